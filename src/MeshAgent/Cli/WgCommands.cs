using System.CommandLine;
using Mesh.WireGuard.Config;
using Mesh.WireGuard.Host;
using Mesh.WireGuard.Ipc;
using Microsoft.Extensions.Logging;

namespace Mesh.Agent.Cli;

/// <summary>`mesh-agent wg up FILE` and `wg down IFACE`: a standalone WireGuard interface from a wg-quick file.</summary>
internal static class WgCommands
{
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
        var (stop, signals) = Daemonize.OnTerminate();
        using var _ = signals;
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
            await Task.WhenAny(stop, quick.Host.Stopped, Task.Delay(Timeout.Infinite, cancellationToken));
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
    private static Task<int> DetachAsync(string name, FileInfo file)
    {
        Directory.CreateDirectory(UapiServer.SocketDirectory);
        var log = Path.Combine(UapiServer.SocketDirectory, name + ".log");
        return Daemonize.DetachAsync(["wg", "up", file.FullName, "--foreground"], new Dictionary<string, string>(), log,
            () => File.Exists(PidFile(name)) && File.Exists(UapiServer.SocketPath(name)),
            () => $"{name} is up (pid {File.ReadAllText(PidFile(name)).Trim()}, log {log})", name);
    }

    private static Task<int> DownAsync(string target, CancellationToken cancellationToken)
    {
        var name = target.EndsWith(".conf", StringComparison.Ordinal) ? Path.GetFileNameWithoutExtension(target) : target;
        var notRunning = Directory.Exists($"/sys/class/net/{name}") ? $"{name} was not brought up by mesh-agent" : $"{name} is not up";
        return Daemonize.StopAsync(PidFile(name), name, notRunning, Path.Combine(UapiServer.SocketDirectory, name + ".log"), cancellationToken);
    }
}
