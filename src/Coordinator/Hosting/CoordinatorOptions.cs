using System.Net;

namespace Mesh.Coordinator.Hosting;

/// <summary>What `mesh-coordinator serve` runs with; every field has a default that works on one machine.</summary>
public sealed record CoordinatorOptions
{
    public const int DefaultPort = 8443;

    public IPEndPoint Listen { get; init; } = new(IPAddress.Loopback, DefaultPort);
    public string DataDir { get; init; } = DefaultDataDir();
    public string? TlsCertFile { get; init; }
    public string? TlsKeyFile { get; init; }

    public static string DefaultDataDir() => Environment.UserName == "root"
        ? "/var/lib/mesh-coordinator"
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "mesh-coordinator");

    /// <summary>The first problem with these options, naming the flag at fault; null when they are usable.</summary>
    public string? Validate()
    {
        if ((TlsCertFile is null) != (TlsKeyFile is null)) return "--tls-cert and --tls-key go together: give both or neither.";
        if (TlsCertFile is not null && !File.Exists(TlsCertFile)) return $"--tls-cert: no such file \"{TlsCertFile}\".";
        if (TlsKeyFile is not null && !File.Exists(TlsKeyFile)) return $"--tls-key: no such file \"{TlsKeyFile}\".";
        return null;
    }
}
