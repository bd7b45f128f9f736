using Mesh.WireGuard.Core;

namespace Mesh.Traversal.Paths;

/// <summary>A direct path: which of our sockets, to which address of the peer.</summary>
public readonly record struct PathKey(int Socket, NetEndpoint Remote);

/// <summary>How a direct path was found; the status shows it.</summary>
public enum Technique
{
    None,
    /// <summary>One of the peer's interface addresses (the same LAN, or a public host).</summary>
    Local,
    /// <summary>The peer's public address as STUN saw it (simultaneous open through port-keeping NATs).</summary>
    Stun,
    /// <summary>An address the peer's probe arrived from, not among its candidates.</summary>
    PeerReflexive,
    /// <summary>The hard-NAT search: many ports on the hard side, random probes from the easy side.</summary>
    Birthday,
    /// <summary>The port the peer's router mapped for it on request (PCP, NAT-PMP or UPnP-IGD).</summary>
    PortMap,
}

public static class TechniqueNames
{
    public static string Name(this Technique technique) => technique switch
    {
        Technique.Local => "local",
        Technique.Stun => "stun",
        Technique.PeerReflexive => "peer-reflexive",
        Technique.Birthday => "birthday",
        Technique.PortMap => "portmap",
        _ => "",
    };
}

internal sealed class PathState(PathKey key, Technique technique)
{
    public PathKey Key { get; } = key;
    public Technique Technique { get; } = technique;
    public TimeSpan? LastPingSent { get; set; }
    public TimeSpan? LastPong { get; set; }

    /// <summary>The first ping since the latest pong: how long the path has gone unanswered.</summary>
    public TimeSpan? FirstUnanswered { get; set; }
    public int Unanswered { get; set; }
    public TimeSpan Latency { get; set; }
}
