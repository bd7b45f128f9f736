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

    /// <summary>Serve h2c on a non-loopback address: for a coordinator behind a TLS-terminating proxy, and only when asked for.</summary>
    public bool InsecurePlaintext { get; init; }

    /// <summary>Where admin calls are served; null: a unix socket in the data directory (<see cref="AdminSocketFile"/>).</summary>
    public IPEndPoint? AdminListen { get; init; }

    public string AdminSocketPath => Path.Combine(DataDir, AdminSocketFile);

    /// <summary>
    /// Whether the agents' listener is plaintext: on loopback without a certificate, or with --insecure-plaintext.
    /// Anywhere else it serves TLS, with a self-signed certificate when none is given.
    /// </summary>
    public bool PlaintextAt(IPEndPoint endpoint) => TlsCertFile is null && (InsecurePlaintext || IPAddress.IsLoopback(endpoint.Address));

    /// <summary>The first STUN port; the second is the next one up. 0 picks free ports (tests).</summary>
    public int StunPort { get; init; } = DefaultStunPort;

    /// <summary>UDP port of the embedded relay (its TCP transport is a WebSocket at /relay on the gRPC port); -1 turns the relay off, 0 picks a free port.</summary>
    public int RelayPort { get; init; } = DefaultRelayPort;

    /// <summary>The host agents reach this coordinator at, for the STUN servers it announces; null: the address each agent connected to.</summary>
    public string? PublicHost { get; init; }

    public Control.MeshOptions Mesh { get; init; } = new();

    /// <summary>Per-source limits on challenges, registrations and admin calls.</summary>
    public SourceRateLimits RateLimits { get; init; } = new();

    /// <summary>Cluster mode: an Npgsql connection string for the store and Orleans membership; null runs embedded on SQLite.</summary>
    public string? Postgres { get; init; }

    /// <summary>The silo's port for the other replicas (cluster mode); null: <see cref="DefaultSiloPort"/>.</summary>
    public int? SiloPort { get; init; }


    /// <summary>The address the other replicas reach this one at (cluster mode); null lets Orleans pick this host's address.</summary>
    public IPAddress? AdvertiseAddress { get; init; }

    public bool Clustered => Postgres is not null;

    public const int DefaultSiloPort = 11111;

    public const int DefaultStunPort = 3478;
    public const int DefaultRelayPort = 3480;
    public const string DatabaseFile = "coordinator.db";
    public const string AdminKeyFile = "admin.key";
    public const string ServerUrlFile = "server.url";
    public const string AdminSocketFile = "admin.sock";

    public static string DefaultDataDir() => Environment.UserName == "root"
        ? "/var/lib/mesh-coordinator"
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "mesh-coordinator");

    /// <summary>The first problem with these options, naming the flag at fault; null when they are usable.</summary>
    public string? Validate()
    {
        if ((TlsCertFile is null) != (TlsKeyFile is null)) return "--tls-cert and --tls-key go together: give both or neither.";
        if (TlsCertFile is not null && !File.Exists(TlsCertFile)) return $"--tls-cert: no such file \"{TlsCertFile}\".";
        if (TlsKeyFile is not null && !File.Exists(TlsKeyFile)) return $"--tls-key: no such file \"{TlsKeyFile}\".";
        if (InsecurePlaintext && TlsCertFile is not null) return "--insecure-plaintext and --tls-cert: give one or the other.";
        if (AdminListen is not null && AdminListen.Port != 0 && AdminListen.Equals(Listen)) return "--admin-listen: it is the --listen address; admin calls need a listener of their own.";
        if (StunPort is < 0 or > 65534) return $"--stun-port: {StunPort} is not a port from 1 to 65534 (the next port up is the second STUN port).";
        if (RelayPort is < -1 or > 65535) return $"--relay-port: {RelayPort} is not a port from 1 to 65535.";
        if (SiloPort is < 0 or > 65535) return $"--silo-port: {SiloPort} is not a port from 1 to 65535.";
        if (SiloPort is not null && !Clustered) return "--silo-port: only replicas of a cluster (--postgres) listen for each other; an embedded coordinator opens no silo port.";
        if (RateLimits.RegistrationsPerSecond is <= 0 or > 1_000_000) return $"--registration-rate: {RateLimits.RegistrationsPerSecond} is not a rate from 0.01 to 1000000 per second.";
        if (Postgres is { Length: 0 }) return "--postgres: the connection string is empty.";
        if (AdvertiseAddress is not null && !Clustered) return "--advertise-address: only replicas of a cluster (--postgres) are reached by others.";
        return null;
    }
}
