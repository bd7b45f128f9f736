using Mesh.Protos.V1;
using Mesh.Traversal.Relay;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Paths;

/// <summary>What the data path reads for one peer: a direct path, a relay, or both while the direct one is unconfirmed.</summary>
internal sealed record Route(PathKey? Direct, RelayLink? Relay, bool RelayOverStream);

/// <summary>
/// One peer as the path engine sees it (magicsock's endpoint): candidates, measured paths and which of them is best,
/// the route in use and the probing schedule. What concerns this peer alone is decided here, without I/O; the engine
/// sends and schedules. Guarded by the engine's gate, but for the fields the data path writes.
/// </summary>
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

    /// <summary>
    /// Takes the peer's candidates and NAT facts from the coordinator (at most <paramref name="maxCandidates"/>;
    /// addresses its probes came from stay); true when any of them changed.
    /// </summary>
    public bool ApplyEndpoints(Endpoints? endpoints, int maxCandidates)
    {
        if (endpoints is null) return false;
        var changed = Mapping != endpoints.NatMapping || UdpBlocked != endpoints.UdpBlocked || PreferredRelay != endpoints.PreferredRelay;
        Mapping = endpoints.NatMapping;
        UdpBlocked = endpoints.UdpBlocked;
        PreferredRelay = endpoints.PreferredRelay;
        var fresh = new Dictionary<NetEndpoint, CandidateKind>();
        foreach (var candidate in endpoints.Candidates)
        {
            if (fresh.Count == maxCandidates) break;
            if (System.Net.IPEndPoint.TryParse(candidate.Address, out var parsed) && parsed.Port != 0) fresh[new NetEndpoint(parsed)] = candidate.Kind;
        }
        foreach (var (address, kind) in fresh)
        {
            if (!Candidates.TryGetValue(address, out var known) || known != kind) changed = true;
        }
        List<NetEndpoint>? gone = null;
        foreach (var (address, kind) in Candidates)
        {
            if (kind != CandidateKind.PeerReflexive && !fresh.ContainsKey(address)) (gone ??= new()).Add(address);
        }
        if (gone is not null)
        {
            changed = true;
            foreach (var address in gone) Candidates.Remove(address);
        }
        foreach (var (address, kind) in fresh) Candidates[address] = kind;
        // A path first found from the peer's own probe, before its candidates came, may go to one of them: it is the
        // LAN (or the STUN address, or a mapped port), and status says so, not "peer-reflexive" for ever.
        foreach (var path in Paths.Values)
        {
            if (path.Technique == Technique.PeerReflexive) path.Technique = TechniqueOf(path.Key);
        }
        return changed;
    }

    /// <summary>How a path to this peer was found: the hard-NAT search for another socket, else the kind of candidate it goes to.</summary>
    public Technique TechniqueOf(PathKey key)
    {
        if (key.Socket != 0) return Technique.Birthday;
        if (!Candidates.TryGetValue(key.Remote, out var kind)) return Technique.PeerReflexive;
        return kind switch
        {
            CandidateKind.Local => Technique.Local,
            CandidateKind.Stun => Technique.Stun,
            CandidateKind.Portmap => Technique.PortMap,
            _ => Technique.PeerReflexive,
        };
    }

    public bool HasCandidate(CandidateKind kind)
    {
        foreach (var candidateKind in Candidates.Values)
        {
            if (candidateKind == kind) return true;
        }
        return false;
    }

    public int CountPeerReflexive()
    {
        var count = 0;
        foreach (var kind in Candidates.Values)
        {
            if (kind == CandidateKind.PeerReflexive) count++;
        }
        return count;
    }

    /// <summary>The peer's public IP (from its STUN candidate) as 16 mapped bytes, or null.</summary>
    public byte[]? PublicAddress()
    {
        foreach (var (address, kind) in Candidates)
        {
            if (kind != CandidateKind.Stun) continue;
            var bytes = new byte[16];
            address.WriteMappedAddress(bytes);
            return bytes;
        }
        return null;
    }

    /// <summary>
    /// The path to carry traffic (magicsock's betterAddr): the cheapest with a pong within <paramref name="trustWindow"/>
    /// (<see cref="PathState.Cost"/>: latency, and loss counted as delay); a new one must cost a quarter less than the
    /// current choice, which still answers, to replace it, so two near-equal paths do not take turns. Null when none answers.
    /// </summary>
    public PathState? Choose(TimeSpan now, TimeSpan trustWindow)
    {
        PathState? choice = null;
        foreach (var path in Paths.Values)
        {
            if (path.LastPong is not { } pong || now - pong >= trustWindow) continue;
            if (choice is null || path.Cost < choice.Cost || (path.Cost == choice.Cost && path.Key.Socket < choice.Key.Socket)) choice = path;
        }
        if (Best is { LastPong: { } currentPong } current && now - currentPong < trustWindow && choice is not null && choice != current && choice.Cost * 4 > current.Cost * 3)
        {
            return current;
        }
        return choice;
    }

    /// <summary>
    /// The chosen path, when its pings have gone unanswered for <paramref name="deadAfter"/> and at least
    /// <paramref name="deadPings"/> of them: forgotten and returned (the peer has no direct path then); else null.
    /// </summary>
    public PathState? TakeDeadBest(TimeSpan now, TimeSpan deadAfter, int deadPings)
    {
        if (Best is not { FirstUnanswered: { } since } best || now - since < deadAfter || best.Unanswered < deadPings) return null;
        Paths.Remove(best.Key);
        Best = null;
        DirectSince = null;
        return best;
    }

    /// <summary>Forgets paths that never answered or have been silent longer than <paramref name="silence"/>, except the chosen one.</summary>
    public void Prune(TimeSpan now, TimeSpan silence)
    {
        List<PathKey>? stale = null;
        foreach (var (key, path) in Paths)
        {
            if (path == Best) continue;
            var heard = path.LastPong ?? path.FirstUnanswered ?? now;
            if (now - heard > silence) (stale ??= new()).Add(key);
        }
        if (stale is null) return;
        foreach (var key in stale) Paths.Remove(key);
    }
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
