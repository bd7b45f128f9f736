using System.Diagnostics;

namespace Mesh.Integration.Tests;

/// <summary>
/// Network namespaces and veth links made for one test, with unique names, and everything started in them.
/// Dispose kills their processes and deletes the namespaces, whether the test passed or not.
/// </summary>
public sealed class NetworkLab : IDisposable
{
    private readonly string _id = Guid.NewGuid().ToString("N")[..6];
    private readonly List<string> _namespaces = new();
    private readonly List<Process> _processes = new();
    private int _links;

    public NetworkLab() => Require();

    /// <summary>A name unique to this lab, at most 15 characters: interfaces share /var/run/wireguard across namespaces.</summary>
    public string InterfaceName(string role) => $"wg{_id}{role}";

    /// <summary>Creates a namespace with loopback up; returns its full name.</summary>
    public string Namespace(string role)
    {
        var name = $"mt{_id}{role}";
        Run("ip", "netns", "add", name);
        _namespaces.Add(name);
        Exec(name, "ip", "link", "set", "lo", "up");
        return name;
    }

    /// <summary>A veth pair between two namespaces with an address (CIDR) on each end; returns the two device names.</summary>
    public (string A, string B) Link(string nsA, string cidrA, string nsB, string cidrB) =>
        Veth(nsA, cidrA, nsB, b => Exec(nsB, "ip", "addr", "add", cidrB, "dev", b));

    /// <summary>
    /// A veth pair from a namespace into a bridge in another namespace; returns the two device names. Without
    /// <paramref name="cidr"/> the first end has no address yet (as a link has before DHCP gives it one).
    /// </summary>
    public (string A, string B) LinkToBridge(string ns, string? cidr, string bridgeNs, string bridge) =>
        Veth(ns, cidr, bridgeNs, b => Exec(bridgeNs, "ip", "link", "set", b, "master", bridge));

    /// <summary>A veth pair, the first end addressed (unless <paramref name="cidrA"/> is null), the second set up by <paramref name="configureB"/>, both up.</summary>
    private (string A, string B) Veth(string nsA, string? cidrA, string nsB, Action<string> configureB)
    {
        var index = _links++;
        var a = $"v{_id}{index}a";
        var b = $"v{_id}{index}b";
        Run("ip", "link", "add", a, "netns", nsA, "type", "veth", "peer", "name", b, "netns", nsB);
        if (cidrA is not null) Exec(nsA, "ip", "addr", "add", cidrA, "dev", a);
        configureB(b);
        Exec(nsA, "ip", "link", "set", a, "up");
        Exec(nsB, "ip", "link", "set", b, "up");
        return (a, b);
    }

    /// <summary>A path for a test's own files (state directories, configs), removed with the lab.</summary>
    public string TempPath(string name) => Path.Combine(Path.GetTempPath(), $"mt{_id}-{name}");

    public string Exec(string ns, params string[] command) => Run("ip", ["netns", "exec", ns, .. command]);

    public int TryExec(string ns, out string output, params string[] command)
    {
        var (code, stdout, stderr) = RunRaw("ip", ["netns", "exec", ns, .. command], null);
        output = stdout + stderr;
        return code;
    }

    /// <summary>Starts a long-running process in a namespace; it is killed when the lab is disposed.</summary>
    public Process Start(string ns, IDictionary<string, string>? environment, params string[] command)
    {
        var info = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var arg in new[] { "netns", "exec", ns }.Concat(command)) info.ArgumentList.Add(arg);
        if (environment is not null)
        {
            foreach (var (key, value) in environment) info.Environment[key] = value;
        }
        var process = Process.Start(info)!;
        _processes.Add(process);
        return process;
    }

    /// <summary>
    /// Starts a daemon (an agent, a coordinator) in a namespace with its output drained into a tail of its last
    /// lines: an undrained pipe fills and blocks the daemon's logging, and with it whatever thread logged.
    /// </summary>
    public (Process Process, OutputTail Output) StartDaemon(string ns, IDictionary<string, string>? environment, params string[] command)
    {
        var process = Start(ns, environment, command);
        var tail = new OutputTail();
        process.OutputDataReceived += (_, e) => tail.Add(e.Data);
        process.ErrorDataReceived += (_, e) => tail.Add(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return (process, tail);
    }

    public string WriteFile(string name, string content)
    {
        var path = Path.Combine(Path.GetTempPath(), $"mt{_id}-{name}");
        File.WriteAllText(path, content);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    public void Dispose()
    {
        foreach (var ns in _namespaces)
        {
            var (_, pids, _) = RunRaw("ip", ["netns", "pids", ns], null);
            foreach (var pid in pids.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                RunRaw("kill", ["-TERM", pid], null);
            }
        }
        foreach (var process in _processes)
        {
            if (!process.WaitForExit(5000)) process.Kill(entireProcessTree: true);
            process.Dispose();
        }
        foreach (var ns in _namespaces)
        {
            var (_, pids, _) = RunRaw("ip", ["netns", "pids", ns], null);
            foreach (var pid in pids.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)) RunRaw("kill", ["-KILL", pid], null);
            RunRaw("ip", ["netns", "del", ns], null);
        }
        foreach (var file in Directory.GetFiles(Path.GetTempPath(), $"mt{_id}-*")) File.Delete(file);
        foreach (var dir in Directory.GetDirectories(Path.GetTempPath(), $"mt{_id}-*")) Directory.Delete(dir, recursive: true);
    }

    public static string Run(string file, params string[] args)
    {
        var (code, stdout, stderr) = RunRaw(file, args, null);
        if (code != 0) throw new InvalidOperationException($"`{file} {string.Join(' ', args)}` failed ({code}): {stderr.Trim()} {stdout.Trim()}");
        return stdout;
    }

    public static (int Code, string Stdout, string Stderr) RunRaw(string file, IEnumerable<string> args, string? stdin)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var arg in args) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        if (stdin is not null) process.StandardInput.Write(stdin);
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(300_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"`{file} {string.Join(' ', args)}` did not finish in 5 minutes.");
        }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Fails with a clear reason when the machine cannot run these tests at all.</summary>
    private static void Require()
    {
        if (Environment.UserName != "root") throw new InvalidOperationException("Integration tests need root (network namespaces, TUN); scripts/test runs them as root in CI.");
        if (!File.Exists("/dev/net/tun")) throw new InvalidOperationException("/dev/net/tun is missing: the kernel has no TUN support here.");
        foreach (var tool in new[] { "wireguard-go", "wg", "ip", "iptables", "ping" })
        {
            if (RunRaw("sh", ["-c", $"command -v {tool}"], null).Code != 0)
            {
                throw new InvalidOperationException($"{tool} is missing; scripts/test installs wireguard-go, wireguard-tools, iproute2, iptables and iputils-ping.");
            }
        }
    }
}

/// <summary>The last lines a process wrote (stdout and stderr together), for a failure's diagnosis.</summary>
public sealed class OutputTail
{
    private const int Lines = 200;
    private readonly Queue<string> _lines = new();

    public void Add(string? line)
    {
        if (line is null) return;
        lock (_lines)
        {
            _lines.Enqueue(line);
            if (_lines.Count > Lines) _lines.Dequeue();
        }
    }

    public string Last(int count)
    {
        lock (_lines) return string.Join('\n', _lines.Skip(Math.Max(0, _lines.Count - count)));
    }

    public override string ToString() => Last(Lines);
}
