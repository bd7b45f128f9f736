using System.Diagnostics;
using System.Runtime.InteropServices;
using Mesh.WireGuard.Host;

namespace Mesh.Agent.Cli;

/// <summary>What `wg up` and `up` share: detaching into a new session with a log, waiting for a signal, stopping by pid file.</summary>
internal static class Daemonize
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Completes on SIGTERM or SIGINT; dispose the registration when done.</summary>
    public static (Task Stop, IDisposable Registration) OnTerminate()
    {
        var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            stop.TrySetResult();
        });
        var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, context =>
        {
            context.Cancel = true;
            stop.TrySetResult();
        });
        return (stop.Task, new Registrations(sigterm, sigint));
    }

    /// <summary>Starts this program again with <paramref name="arguments"/> in a new session, output to <paramref name="log"/>; returns once <paramref name="isUp"/> holds or the child failed.</summary>
    /// <param name="environment">Variables for the child alone: secrets go here, never into its argv.</param>
    public static async Task<int> DetachAsync(IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string> environment, string log, Func<bool> isUp, Func<string> upMessage, string what)
    {
        var self = Environment.ProcessPath!;
        var command = new List<string>();
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") command.Add(Environment.GetCommandLineArgs()[0]);
        command.AddRange(arguments);
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("exec \"$@\" >>\"$LOG\" 2>&1 </dev/null");
        info.ArgumentList.Add("sh");
        if (File.Exists("/usr/bin/setsid")) info.ArgumentList.Add("/usr/bin/setsid");
        info.ArgumentList.Add(self);
        foreach (var arg in command) info.ArgumentList.Add(arg);
        info.Environment["LOG"] = log;
        foreach (var (name, value) in environment) info.Environment[name] = value;
        using var child = Process.Start(info)!;

        var until = DateTime.UtcNow + StartTimeout;
        while (DateTime.UtcNow < until)
        {
            if (isUp())
            {
                Console.Error.WriteLine($"mesh-agent: {upMessage()}");
                return 0;
            }
            if (child.HasExited)
            {
                Console.Error.WriteLine($"mesh-agent: {what} did not come up:");
                Console.Error.Write(File.Exists(log) ? string.Join('\n', File.ReadAllLines(log).TakeLast(10)) + "\n" : "(no log)\n");
                return 1;
            }
            await Task.Delay(50);
        }
        Console.Error.WriteLine($"mesh-agent: {what} did not come up within {StartTimeout.TotalSeconds:F0} s; see {log}");
        return 1;
    }

    /// <summary>SIGTERM to the process in <paramref name="pidFile"/>, waiting for it to exit; a clean stop removes its log.</summary>
    public static async Task<int> StopAsync(string pidFile, string what, string notRunning, string log, CancellationToken cancellationToken)
    {
        if (!File.Exists(pidFile) || !int.TryParse(File.ReadAllText(pidFile).Trim(), out var pid))
        {
            Console.Error.WriteLine($"mesh-agent: {notRunning}");
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
            Console.Error.WriteLine($"mesh-agent: {what} is not running (stale pid file removed)");
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
                Console.Error.WriteLine($"mesh-agent: {what} (pid {pid}) did not stop within 15 s");
                return 1;
            }
        }
        File.Delete(log);
        return 0;
    }

    private sealed class Registrations(params IDisposable[] registrations) : IDisposable
    {
        public void Dispose()
        {
            foreach (var registration in registrations) registration.Dispose();
        }
    }
}
