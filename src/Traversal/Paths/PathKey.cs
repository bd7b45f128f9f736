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

/// <summary>One direct path to a peer, measured: its latency (smoothed over pongs) and the share of its pings lost.</summary>
internal sealed class PathState(PathKey key, Technique technique)
{
    /// <summary>Pings counted for the loss estimate; past this many both counts halve, so recent pings weigh most.</summary>
    private const int LossWindow = 16;

    private int _pings;
    private int _pongs;

    public PathKey Key { get; } = key;
    /// <summary>How the path was found; a path found from the peer's own probe is named again once its candidates say what the address is.</summary>
    public Technique Technique { get; set; } = technique;
    public TimeSpan? LastPingSent { get; set; }
    public TimeSpan? LastPong { get; set; }

    /// <summary>The first ping since the latest pong: how long the path has gone unanswered.</summary>
    public TimeSpan? FirstUnanswered { get; set; }
    public int Unanswered { get; set; }
    public TimeSpan Latency { get; private set; }

    /// <summary>The share of recent pings that went unanswered (0 to 1).</summary>
    public double Loss => _pings == 0 ? 0 : Math.Clamp(1 - (double)_pongs / _pings, 0, 1);

    /// <summary>
    /// What the path costs, lower being better: its latency, with loss counted as delay (a path that loses a third
    /// of its pings costs as much as one twice as slow that loses none), as magicsock's betterAddr ranks by latency.
    /// </summary>
    public double Cost => (Latency.TotalMilliseconds + 0.01) * (1 + 3 * Loss);

    public void Pinged(TimeSpan now)
    {
        LastPingSent = now;
        FirstUnanswered ??= now;
        Unanswered++;
        if (++_pings <= LossWindow) return;
        _pings /= 2;
        _pongs /= 2;
    }

    public void Answered(TimeSpan now, TimeSpan latency)
    {
        Latency = LastPong is null ? latency : (Latency * 3 + latency) / 4;
        LastPong = now;
        FirstUnanswered = null;
        Unanswered = 0;
        _pongs++;
    }
}
