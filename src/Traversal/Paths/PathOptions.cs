namespace Mesh.Traversal.Paths;

/// <summary>The path engine's timings and switches. Defaults are what agents run with; the NAT lab varies them.</summary>
public sealed class PathOptions
{
    /// <summary>Ping on the chosen direct path this often while traffic flows.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A direct path carries traffic alone this long after its latest pong; after that the relay carries a copy.</summary>
    public TimeSpan TrustWindow { get; init; } = TimeSpan.FromSeconds(2.5);

    /// <summary>A direct path whose pings have gone unanswered this long is dropped (two heartbeats: the relay takes over within 3 s).</summary>
    public TimeSpan DeadAfter { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>A peer counts as active (heartbeats continue) this long after the last packet sent to it.</summary>
    public TimeSpan ActiveWindow { get; init; } = TimeSpan.FromSeconds(45);

    /// <summary>Without a direct path, probe rounds come at these intervals: quickly at first, then to retry upgrades.</summary>
    public TimeSpan FastProbeInterval { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan FastProbePhase { get; init; } = TimeSpan.FromSeconds(5);
    public TimeSpan ProbeInterval { get; init; } = TimeSpan.FromSeconds(5);
    public TimeSpan ProbePhase { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>After a phase without a direct path, a quiet gap this long (longer than NATs keep unanswered flows), then a new phase.</summary>
    public TimeSpan UpgradeInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>The coordinator is asked to make a peer probe at once no more often than this.</summary>
    public TimeSpan ConnectRequestInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Ask the gateway to map socket 0's port (PCP, then NAT-PMP) and publish the mapped port.</summary>
    public bool PortMapping { get; init; } = true;

    public TimeSpan NetcheckInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Keepalive for WireGuard peers when this node sits behind NAT; zero turns keepalives off.</summary>
    public TimeSpan NatKeepalive { get; init; } = TimeSpan.FromSeconds(25);

    /// <summary>
    /// Hop limit of opening packets: pings that create this side's NAT mapping toward a peer's public address
    /// but die before the peer's NAT, so they leave no flow there that would push the peer's own mapping onto
    /// another port (Linux conntrack does that). 2 clears one NAT; 0 turns opening packets off.
    /// </summary>
    public int OpeningTtl { get; init; } = 2;

    /// <summary>
    /// The most probes (pings and opening packets, heartbeats included) this agent sends toward one peer's
    /// candidates: a burst, then a steady rate. Whatever a peer's endpoints name, that is all it gets from here.
    /// The hard-NAT search has its own bound (its rate and duration, and <see cref="MaxBirthdaySearches"/>).
    /// </summary>
    public int ProbeBurst { get; init; } = 64;
    public double ProbesPerSecond { get; init; } = 20;

    /// <summary>At most this many of the peer's candidates are taken (the coordinator already refuses more).</summary>
    public int MaxCandidates { get; init; } = 16;

    /// <summary>Hard-NAT searches running at once, over all peers: each holds up to <see cref="BirthdaySockets"/> sockets.</summary>
    public int MaxBirthdaySearches { get; init; } = 2;

    /// <summary>The hard-NAT (birthday-paradox) technique: on, how many ports the hard side opens, how fast the easy side probes and for how long.</summary>
    public bool HardNatTechnique { get; init; } = true;
    public int BirthdaySockets { get; init; } = 256;
    public int BirthdayProbesPerSecond { get; init; } = 100;
    public TimeSpan BirthdayDuration { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>The ordinary candidates get this head start before the birthday search begins.</summary>
    public TimeSpan BirthdayDelay { get; init; } = TimeSpan.FromSeconds(1.5);
}
