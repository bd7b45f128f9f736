using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Mesh.WireGuard.Config;
using Mesh.WireGuard.Host;
using Mesh.WireGuard.Ipc;
using Microsoft.Extensions.Logging;

namespace Mesh.Agent.Cli;

/// <summary>`mesh-agent wg up FILE` and `wg down IFACE`: a standalone WireGuard interface from a wg-quick file.</summary>
internal static class WgCommands
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    public static Command Build()
    {
        var file = new Argument<FileInfo>("config") { Description = "A wg-quick file; the interface is named after it (wgm0.conf gives wgm0)." };
        var foreground = new Option<bool>("--foreground", "-f") { Description = "Stay in the foreground (for systemd units and tests) instead of detaching." };
        var up = new Command("up", "Bring a WireGuard interface up from a wg-quick file.") { file, foreground };
        up.SetAction((parse, cancellationToken) => UpAsync(parse.GetValue(file)!, parse.GetValue(foreground), cancellationToken));

        var target = new Argument<string>("interface") { Description = "The interface name, or its wg-quick file." };
        var down = new Command("down", "Take an interface brought up by `wg up` down.") { target };
        down.SetAction((parse, cancellationToken) => DownAsync(parse.GetValue(target)!, cancellationToken));

        return new Command("wg", "Run WireGuard from ordinary wg-quick files, without the mesh.") { up, down };
    }

    private static string PidFile(string name) => Path.Combine(UapiServer.SocketDirectory, name + ".pid");

    private static async Task<int> UpAsync(FileInfo file, bool foreground, CancellationToken cancellationToken)
    {
        string name;
        WgQuickConfig config;
        try
        {
            name = WgQuickConfig.InterfaceNameFor(file.FullName);
            config = WgQuickConfig.Load(file.FullName);
            WgQuick.Resolve(config, file.Name);
        }
        catch (ConfigException ex)
        {
            Console.Error.WriteLine($"mesh-agent: {ex.Message}");
            return 1;
        }
        if (Directory.Exists($"/sys/class/net/{name}"))
        {
            Console.Error.WriteLine($"mesh-agent: {name} already exists");
            return 1;
        }
        return foreground ? await RunForegroundAsync(name, file, config, cancellationToken) : await DetachAsync(name, file);
    }

    private static async Task<int> RunForegroundAsync(string name, FileInfo file, WgQuickConfig config, CancellationToken cancellationToken)
    {
        using var loggerFactory = LoggerFactory.Create(logging => logging.AddSimpleConsole(c =>
        {
            c.SingleLine = true;
            c.TimestampFormat = "HH:mm:ss ";
        }));
        var logger = loggerFactory.CreateLogger("mesh-agent");
        // Registered before bringing the interface up, so a signal during bring-up still tears down cleanly.
        var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            stop.TrySetResult();
        });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, context =>
        {
            context.Cancel = true;
            stop.TrySetResult();
        });
        WgQuick quick;
        try
        {
            quick = WgQuick.Up(name, config, file.Name, logger);
        }
        catch (Exception ex) when (ex is ConfigException or InvalidOperationException or IOException or ArgumentException or System.Net.Sockets.SocketException)
        {
            Console.Error.WriteLine($"mesh-agent: {name}: {ex.Message}");
            return 1;
        }

        await File.WriteAllTextAsync(PidFile(name), Environment.ProcessId + "\n", CancellationToken.None);
        try
        {
            await Task.WhenAny(stop.Task, quick.Host.Stopped, Task.Delay(Timeout.Infinite, cancellationToken));
        }
        finally
        {
            logger.LogInformation("Taking {Name} down.", name);
            quick.Dispose();
            File.Delete(PidFile(name));
        }
        return 0;
    }

    /// <summary>Starts this same command with --foreground in a new session, and returns once the interface is up or failed.</summary>
    private static async Task<int> DetachAsync(string name, FileInfo file)
    {
        var log = Path.Combine(UapiServer.SocketDirectory, name + ".log");
        Directory.CreateDirectory(UapiServer.SocketDirectory);
        var self = Environment.ProcessPath!;
        var command = new List<string>();
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") command.Add(Environment.GetCommandLineArgs()[0]);
        command.AddRange(["wg", "up", file.FullName, "--foreground"]);
        var setsid = File.Exists("/usr/bin/setsid") ? "/usr/bin/setsid" : null;
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("exec \"$@\" >>\"$LOG\" 2>&1 </dev/null");
        info.ArgumentList.Add("sh");
        if (setsid is not null) info.ArgumentList.Add(setsid);
        info.ArgumentList.Add(self);
        foreach (var arg in command) info.ArgumentList.Add(arg);
        info.Environment["LOG"] = log;
        using var child = Process.Start(info)!;

        var socket = UapiServer.SocketPath(name);
        var until = DateTime.UtcNow + StartTimeout;
        while (DateTime.UtcNow < until)
        {
            if (File.Exists(PidFile(name)) && File.Exists(socket))
            {
                Console.Error.WriteLine($"mesh-agent: {name} is up (pid {File.ReadAllText(PidFile(name)).Trim()}, log {log})");
                return 0;
            }
            if (child.HasExited)
            {
                Console.Error.WriteLine($"mesh-agent: {name} did not come up:");
                Console.Error.Write(File.Exists(log) ? string.Join('\n', File.ReadAllLines(log).TakeLast(10)) + "\n" : "(no log)\n");
                return 1;
            }
            await Task.Delay(50);
        }
        Console.Error.WriteLine($"mesh-agent: {name} did not come up within {StartTimeout.TotalSeconds:F0} s; see {log}");
        return 1;
    }

    private static async Task<int> DownAsync(string target, CancellationToken cancellationToken)
    {
        var name = target.EndsWith(".conf", StringComparison.Ordinal) ? Path.GetFileNameWithoutExtension(target) : target;
        var pidFile = PidFile(name);
        if (!File.Exists(pidFile) || !int.TryParse(File.ReadAllText(pidFile).Trim(), out var pid))
        {
            Console.Error.WriteLine(Directory.Exists($"/sys/class/net/{name}")
                ? $"mesh-agent: {name} was not brought up by mesh-agent"
                : $"mesh-agent: {name} is not up");
            return 1;
        }
        Process process;
        try
        {
            process = Process.GetProcessById(pid);
        }
        catch (ArgumentException)
        {
            File.Delete(pidFile);
            Console.Error.WriteLine($"mesh-agent: {name} is not running (stale pid file removed)");
            return 1;
        }
        using (process)
        {
            Shell.Run("kill", "-TERM", pid.ToString());
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(15));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine($"mesh-agent: {name} (pid {pid}) did not stop within 15 s");
                return 1;
            }
        }
        // A clean stop leaves nothing in the detached daemon's log worth keeping.
        File.Delete(Path.Combine(UapiServer.SocketDirectory, name + ".log"));
        return 0;
    }
}
