using System.Diagnostics;

namespace Mesh.Tests.Shared;

/// <summary>
/// A PostgreSQL of the test's own: Debian's server binaries, initdb into a temporary directory as the unprivileged
/// postgres user, listening on 127.0.0.1 at a free port (inside a network namespace, if one is given). Stop and
/// Start restart it on the same data; Dispose stops it at once and deletes everything, whether the test passed.
/// </summary>
public sealed class PostgresServer : IDisposable
{
    private const string User = "postgres";
    private readonly string _directory;
    private readonly string? _netns;

    private PostgresServer(string directory, int port, string? netns)
    {
        _directory = directory;
        Port = port;
        _netns = netns;
    }

    public int Port { get; }
    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username={User};Database=postgres";
    private string DataDirectory => Path.Combine(_directory, "data");

    public static PostgresServer Start(string? netns = null)
    {
        var directory = Path.Combine(Path.GetTempPath(), $"mesh-pg-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        var server = new PostgresServer(directory, FreePorts.Tcp(), netns);
        try
        {
            Run("chown", User, directory);
            server.AsPostgres(Binary("initdb"), "-D", server.DataDirectory, "-A", "trust", "-U", User, "--no-sync", "-E", "UTF8");
            server.Start();
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    public void Start() => AsPostgres(Binary("pg_ctl"), "-D", DataDirectory, "-l", Path.Combine(_directory, "log"), "-w", "-t", "60",
        "-o", $"-p {Port} -k {_directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300", "start");

    /// <summary>A fast shutdown: open connections are cut, as when the database is restarted under load.</summary>
    public void Stop() => AsPostgres(Binary("pg_ctl"), "-D", DataDirectory, "-w", "-t", "60", "-m", "fast", "stop");

    public void Dispose()
    {
        if (File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
        {
            try
            {
                AsPostgres(Binary("pg_ctl"), "-D", DataDirectory, "-w", "-m", "immediate", "stop");
            }
            catch (InvalidOperationException)
            {
                // Already stopped.
            }
        }
        Directory.Delete(_directory, recursive: true);
    }

    private void AsPostgres(params string[] command)
    {
        string[] asUser = ["runuser", "-u", User, "--", .. command];
        if (_netns is null) Run(asUser[0], asUser[1..]);
        else Run("ip", ["netns", "exec", _netns, .. asUser]);
    }

    /// <summary>The newest installed server's binary (scripts/test installs Debian's postgresql-15).</summary>
    private static string Binary(string name)
    {
        const string root = "/usr/lib/postgresql";
        var versions = Directory.Exists(root) ? Directory.GetDirectories(root).OrderByDescending(d => int.TryParse(Path.GetFileName(d), out var v) ? v : 0).ToList() : [];
        foreach (var version in versions)
        {
            var path = Path.Combine(version, "bin", name);
            if (File.Exists(path)) return path;
        }
        throw new InvalidOperationException($"PostgreSQL's {name} is missing under {root}: install Debian's postgresql-15 (scripts/test does).");
    }

    private static void Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"`{file} {string.Join(' ', args)}` did not finish in 2 minutes.");
        }
        if (process.ExitCode != 0) throw new InvalidOperationException($"`{file} {string.Join(' ', args)}` failed ({process.ExitCode}): {stderr.Result.Trim()} {stdout.Result.Trim()}");
    }
}
