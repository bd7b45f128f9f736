using Mesh.Protos.V1;
using Mesh.Traversal.Relay;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Paths;

/// <summary>What the data path reads for one peer: a direct path, a relay, or both while the direct one is unconfirmed.</summary>
internal sealed record Route(PathKey? Direct, RelayLink? Relay, bool RelayOverStream);

/// <summary>One peer as the path engine sees it: candidates, measured paths, the route in use and the probing schedule.</summary>
internal sealed class PeerPaths(PublicKey key, NetEndpoint synthetic)
{
    public PublicKey Key { get; } = key;
    public NodeKeyId Id { get; } = NodeKeyId.From(key);

    /// <summary>The endpoint the WireGuard device sends this peer's packets to: it stands for the peer, not an address.</summary>
    public NetEndpoint Synthetic { get; } = synthetic;

    public bool Online { get; set; }

    /// <summary>What this agent may still send toward the peer's candidates (set by the engine from its options).</summary>
    public Traversal.TokenBucket Budget { get; init; } = null!;
    public Dictionary<NetEndpoint, CandidateKind> Candidates { get; } = new();
    public NatMapping Mapping { get; set; }
    public bool UdpBlocked { get; set; }
    public string PreferredRelay { get; set; } = "";
    public Dictionary<PathKey, PathState> Paths { get; } = new();
    public PathState? Best { get; set; }
    public TimeSpan? DirectSince { get; set; }
    /// <summary>The relay the peer was last heard through: the data path writes it too, without the gate (a single reference write).</summary>
    public volatile string? LastRelayHeard;
    public TimeSpan? RelayLatency { get; set; }
    public TimeSpan? LastRelayPing { get; set; }

    /// <summary>When the current probing phase began, and when its next round is due.</summary>
    public TimeSpan PhaseStarted { get; set; }
    public TimeSpan? NextProbe { get; set; }

    public TimeSpan? LastConnectRequest { get; set; }

    /// <summary>When every candidate was last pinged while a direct path was in use.</summary>
    public TimeSpan? LastUpgradeRound { get; set; }

    /// <summary>When the peer last asked us (through the coordinator) to connect.</summary>
    public TimeSpan? LastNotice { get; set; }

    /// <summary>From when pings may go to the peer's public address: at once when it asked us to connect (it has opened its NAT), later when we asked.</summary>
    public TimeSpan PublicPingsFrom { get; set; }
    public BirthdaySearch? Birthday { get; set; }
    public TimeSpan? LastBirthdayEnded { get; set; }
    public string? LastFailure { get; set; }

    public volatile Route Route = new(null, null, false);

    /// <summary>Ticks of the clock: the last send (written by the data path) and until when the direct path is trusted alone.</summary>
    public long LastSendTicks;

    /// <summary>Counts route changes, so the node can resend a stalled handshake the moment a route appears.</summary>
    public int RouteGeneration;
    public long ConfirmedUntilTicks;

    public bool IsActive(TimeSpan now, TimeSpan window) => now.Ticks - Volatile.Read(ref LastSendTicks) < window.Ticks;
}

/// <summary>One run of the hard-NAT technique with one peer, on the side it plays.</summary>
internal sealed class BirthdaySearch(bool hardSide, TimeSpan started, byte[]? target)
{
    public bool HardSide { get; } = hardSide;

    /// <summary>The easy side's spray target: the hard side's public IP as 16 mapped bytes.</summary>
    public byte[]? Target { get; } = target;
    public TimeSpan Started { get; } = started;
    public List<int> Sockets { get; } = new();
    public TimeSpan? LastSocketRound { get; set; }
    public int ProbesSent { get; set; }
}
