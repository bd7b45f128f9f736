using Mesh.Transport;

namespace Mesh.Agent.Daemon;

/// <summary>What `mesh-agent up` runs with. Only the coordinator's URL (or its replicas' URLs) is needed; everything else has a default.</summary>
public sealed record AgentOptions
{
    public const string KeyFile = "node.key";
    public const string SocketFile = "agent.sock";
    public const string PidFile = "agent.pid";
    public const string LogFile = "agent.log";
    public const int DefaultListenPort = 41641;
    public const int DefaultRelayPort = 3480;

    /// <summary>The coordinator's replicas (one URL for a single coordinator); the agent holds its stream with one at a time.</summary>
    public required IReadOnlyList<Uri> Coordinators { get; init; }
    public string AuthKey { get; init; } = "";

    /// <summary>Which certificates the coordinator and its relays may present: the system's roots, a private CA, or a pin.</summary>
    public ServerTrust Trust { get; init; } = ServerTrust.SystemRoots;
    public string StateDir { get; init; } = DefaultStateDir();
    public string InterfaceName { get; init; } = "mesh0";
    public string Hostname { get; init; } = Environment.MachineName;

    /// <summary>UDP port of the agent's one socket; 0 picks a free one.</summary>
    public int ListenPort { get; init; } = DefaultListenPort;

    /// <summary>Also serve as a relay (bounce node) for the mesh, on this UDP port.</summary>
    public bool Relay { get; init; }
    public int RelayPort { get; init; } = DefaultRelayPort;

    /// <summary>The "ip:port" peers reach the relay at; default: this node's public address as STUN saw it.</summary>
    public string? RelayAddress { get; init; }

    public string SocketPath => Path.Combine(StateDir, SocketFile);

    public static string DefaultStateDir() => Environment.UserName == "root"
        ? "/var/lib/mesh-agent"
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "mesh-agent");
}
