using System.Diagnostics;

namespace Mesh.WireGuard.Host;

/// <summary>Runs system tools (ip, resolvconf, sysctl, hook commands) and turns failure into an exception with their stderr.</summary>
public static class Shell
{
    public static string Run(string file, params string[] args) => Run(file, args, stdin: null);

    public static string Run(string file, IReadOnlyList<string> args, string? stdin)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
        };
        foreach (var arg in args) info.ArgumentList.Add(arg);
        Process process;
        try
        {
            process = Process.Start(info)!;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException($"cannot run {file}: {ex.Message}");
        }
        using (process)
        {
            if (stdin is not null)
            {
                process.StandardInput.Write(stdin);
                process.StandardInput.Close();
            }
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"`{file} {string.Join(' ', args)}` failed ({process.ExitCode}): {stderr.Trim()}");
            }
            return stdout.Result;
        }
    }

    /// <summary>A wg-quick hook: run by bash with %i replaced by the interface name.</summary>
    public static void Hook(string command, string interfaceName) => Run("/bin/bash", ["-c", command.Replace("%i", interfaceName, StringComparison.Ordinal)], stdin: null);

    public static bool Exists(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':').Any(dir => File.Exists(Path.Combine(dir, tool)));
}
