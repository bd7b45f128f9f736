using System.Collections.Concurrent;
using System.Net;
using Mesh.Traversal.Probes;
using Mesh.Traversal.Relay;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;
using Mesh.WireGuard.Noise;

using Mesh.Traversal.PortMapping;

namespace Mesh.Traversal.Paths;

/// <summary>
/// Chooses, for every peer, where its WireGuard packets go: a direct path found by probing candidates
/// (and by the hard-NAT search), or a bounce node. No I/O and no timers of its own: the bind feeds it
/// what arrives that is not WireGuard and the host ticks it; it sends its own traffic through
/// <see cref="IPathSockets"/> and asks the coordinator through <see cref="IControlRequests"/>. The WireGuard
/// device sends every peer's packets to that peer's synthetic endpoint; the bind asks <see cref="TryRoute"/>
/// for the route of the moment and sends there, so a path change never touches the WireGuard session.
/// State changes happen under one lock (the gate), except what the data path records as packets pass, each a
/// single volatile write: a peer's last send time and the relay it was last heard through. The data path reads
/// immutable snapshots without the gate (a peer's route, the relay tables, the peer indexes). Under the gate the
/// engine calls only its sockets and control requests, which take no lock of the mesh node's (the lock order is
/// in MeshNode's summary).
/// </summary>
public sealed partial class PathEngine
{
    private const int MaxPendingPings = 8192;
    private const int MaxPeerReflexive = 16;
    private const int MaxEarlyNotices = 64;
    private static readonly TimeSpan PendingLifetime = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan RelayPingInterval = TimeSpan.FromSeconds(5);

    private readonly object _gate = new();
    private readonly PrivateKey _key;
    private readonly IClock _clock;
    private readonly IEntropy _entropy;
    private readonly IPathSockets _sockets;
    private readonly IControlRequests _control;
    private readonly RelaySessions _relays;
    private readonly ProbeCodec _probes;
    private readonly byte[] _scratch = new byte[2048];
    private readonly Dictionary<NodeKeyId, PeerPaths> _peers = new();
    private readonly Dictionary<UInt128, PendingPing> _pending = new();
    private readonly Dictionary<UInt128, PingReply> _pingReplies = new();
    private readonly Dictionary<NodeKeyId, TimeSpan> _earlyNotices = new();
    // Read without the gate on the data path; written under it, one entry per peer added or removed (a snapshot
    // rebuilt per change made a 10,000-peer map cost 10,000 rebuilds).
    private readonly ConcurrentDictionary<NetEndpoint, PeerPaths> _bySynthetic = new();
    private readonly ConcurrentDictionary<NodeKeyId, PeerPaths> _byId = new();
    private uint _nextSlot = 1;
    private TimeSpan _lastPendingSweep;
    private long _noRoute;
    private long _strayDatagrams;
    private readonly long[] _probeRejections = new long[Enum.GetValues<ProbeResult>().Length];

    public PathEngine(PrivateKey key, IClock clock, IEntropy entropy, IPathSockets sockets, IControlRequests control, PathOptions? options = null)
    {
        _key = key;
        _clock = clock;
        _entropy = entropy;
        _sockets = sockets;
        _control = control;
        _relays = new RelaySessions(key, sockets);
        Options = options ?? new PathOptions();
        _probes = new ProbeCodec(key, clock);
        _portMap = new PortMapState(Options.PortMapping, entropy);
    }

    public PathOptions Options { get; }
    public PublicKey PublicKey => _key.PublicKey;

    /// <summary>Packets for a peer with neither a direct path nor a relay.</summary>
    public long NoRoute => Interlocked.Read(ref _noRoute);

    /// <summary>Datagrams that were none of WireGuard, STUN, probe or relay.</summary>
    public long StrayDatagrams => Interlocked.Read(ref _strayDatagrams);

    public long ProbesRejected(ProbeResult reason) => Interlocked.Read(ref _probeRejections[(int)reason]);

    /// <summary>Probes not sent because the peer's budget was spent (its candidates asked for more than <see cref="PathOptions.ProbesPerSecond"/>).</summary>
    public long ProbesOverBudget => Interlocked.Read(ref _probesOverBudget);
    private long _probesOverBudget;

    /// <summary>
    /// The data path, for a WireGuard datagram addressed to <paramref name="destination"/>: false when that is not a
    /// mesh peer's synthetic endpoint (the bind sends it to the address itself), else the peer's route of the moment.
    /// While a direct path is unconfirmed the relay carries a copy (WireGuard's replay window drops the duplicate).
    /// No gate: it reads the peer's route snapshot and records the send time.
    /// </summary>
    internal bool TryRoute(NetEndpoint destination, out RouteChoice choice)
    {
        if (!_bySynthetic.TryGetValue(destination, out var peer))
        {
            choice = default;
            return false;
        }
        var now = _clock.Now;
        Volatile.Write(ref peer.LastSendTicks, now.Ticks);
        var route = peer.Route;
        var relay = route.Relay is { } link && link.Client.IsAlive(now) ? link : null;
        if (route.Direct is not null && now.Ticks < Volatile.Read(ref peer.ConfirmedUntilTicks)) relay = null;
        else if (route.Direct is null && relay is null) Interlocked.Increment(ref _noRoute);
        choice = new RouteChoice(route.Direct, relay, route.RelayOverStream, peer.Key);
        return true;
    }

    /// <summary>What arrived that is neither WireGuard nor a relay's frame: STUN, probes, the router's port-mapping answers.</summary>
    public void OnDatagram(int socket, ReadOnlySpan<byte> datagram, NetEndpoint from)
    {
        lock (_gate)
        {
            var now = _clock.Now;
            if (socket == 0 && _portMap.IsRouter(from)) OnPortMapResponse(datagram, now);
            else if (Stun.StunMessage.LooksLikeStun(datagram)) OnStun(datagram, now);
            else if (ProbeCodec.LooksLikeProbe(datagram)) OnProbe(datagram, socket, from, null, now);
            else Interlocked.Increment(ref _strayDatagrams);
        }
    }

    /// <summary>The relays this node has sessions with: the bind looks up where a relay's frame came from.</summary>
    internal RelaySessions Relays => _relays;

    /// <summary>Runs every timer that is due: probes, heartbeats, the hard-NAT search, relay sessions, NAT discovery.</summary>
    public void Tick()
    {
        lock (_gate)
        {
            var now = _clock.Now;
            TickDiscovery(now);
            _relays.Tick(now);
            foreach (var peer in _peers.Values) TickPeer(peer, now);
            if (now - _lastPendingSweep >= TimeSpan.FromSeconds(1)) SweepPending(now);
        }
    }

    /// <summary>How soon <see cref="Tick"/> wants to run again: often while a hard-NAT search sprays probes.</summary>
    public TimeSpan TickInterval
    {
        get
        {
            lock (_gate)
            {
                foreach (var peer in _peers.Values)
                {
                    if (peer.Birthday is { HardSide: false }) return TimeSpan.FromMilliseconds(10);
                }
                return TimeSpan.FromMilliseconds(50);
            }
        }
    }

    /// <summary>Adds or updates a peer from the netmap; returns the synthetic endpoint its WireGuard peer sends to.</summary>
    public NetEndpoint UpsertPeer(PublicKey key, Protos.V1.Endpoints? endpoints, bool online)
    {
        lock (_gate)
        {
            var now = _clock.Now;
            var id = NodeKeyId.From(key);
            if (!_peers.TryGetValue(id, out var peer))
            {
                peer = new PeerPaths(key, SyntheticEndpoint(_nextSlot++)) { Budget = new Traversal.TokenBucket(Options.ProbeBurst, Options.ProbesPerSecond) };
                _peers[id] = peer;
                _bySynthetic[peer.Synthetic] = peer;
                _byId[id] = peer;
                if (_earlyNotices.Remove(id, out var noticed)) peer.LastNotice = noticed;
            }
            var changed = peer.ApplyEndpoints(endpoints, Options.MaxCandidates);
            var cameOnline = online && !peer.Online;
            peer.Online = online;
            if (online && (cameOnline || changed))
            {
                StartPhase(peer, now, requestConnect: true);
                Interlocked.Increment(ref peer.RouteGeneration);
            }
            UpdateRoute(peer, now);
            return peer.Synthetic;
        }
    }

    public void RemovePeer(PublicKey key)
    {
        lock (_gate)
        {
            if (!_peers.Remove(NodeKeyId.From(key), out var peer)) return;
            if (peer.Birthday is not null) EndBirthday(peer, _clock.Now, keepSocket: -1);
            _probes.Forget(key);
            _bySynthetic.TryRemove(peer.Synthetic, out _);
            _byId.TryRemove(peer.Id, out _);
        }
    }

    /// <summary>The peer asked (through the coordinator) to connect now: probe its candidates at once.</summary>
    public void OnConnectNotice(PublicKey key, Protos.V1.Endpoints? endpoints)
    {
        lock (_gate)
        {
            var now = _clock.Now;
            var id = NodeKeyId.From(key);
            if (!_peers.TryGetValue(id, out var peer))
            {
                RememberEarlyNotice(id, now);
                return;
            }
            peer.LastNotice = now;
            peer.ApplyEndpoints(endpoints, Options.MaxCandidates);
            StartPhase(peer, now, requestConnect: false);
            peer.PublicPingsFrom = now;
            SendProbeRound(peer, now);
        }
    }

    /// <summary>Changes whenever the peer's route or reachability does (0 for an unknown peer).</summary>
    public int RouteGeneration(PublicKey key) => _byId.TryGetValue(NodeKeyId.From(key), out var peer) ? Volatile.Read(ref peer.RouteGeneration) : 0;

    public IReadOnlyList<PeerPathStatus> Snapshot()
    {
        lock (_gate)
        {
            var now = _clock.Now;
            var list = new List<PeerPathStatus>(_peers.Count);
            foreach (var peer in _peers.Values) list.Add(StatusOf(peer, now));
            return list;
        }
    }

    public PeerPathStatus? StatusOf(PublicKey key)
    {
        lock (_gate) return _peers.TryGetValue(NodeKeyId.From(key), out var peer) ? StatusOf(peer, _clock.Now) : null;
    }

    /// <summary>Sends one ping on the peer's current route for `mesh-agent ping`; null when the peer has no route.</summary>
    public UInt128? StartPing(PublicKey key)
    {
        lock (_gate)
        {
            if (!_peers.TryGetValue(NodeKeyId.From(key), out var peer)) return null;
            var now = _clock.Now;
            var route = peer.Route;
            if (route.Direct is { } direct && peer.Paths.TryGetValue(direct, out var path)) return SendPing(peer, path.Key, path.Technique, now, user: true);
            if (route.Relay is { } relay) return SendRelayPing(peer, relay, route.RelayOverStream, now, user: true);
            return null;
        }
    }

    public bool TryTakePingReply(UInt128 transaction, out PingReply reply)
    {
        lock (_gate) return _pingReplies.Remove(transaction, out reply!);
    }

    private PeerPathStatus StatusOf(PeerPaths peer, TimeSpan now)
    {
        var route = peer.Route;
        if (peer.Best is { } best)
        {
            return new PeerPathStatus(peer.Key, PathKind.Direct, best.Key.Remote, null, false, best.Latency, best.Technique, peer.DirectSince, "");
        }
        var relay = route.Relay is { } link && link.Client.IsAlive(now) ? link : null;
        return new PeerPathStatus(peer.Key, relay is null ? PathKind.None : PathKind.Relay, null, relay?.Id, relay is not null && route.RelayOverStream,
            relay is null ? null : peer.RelayLatency, Technique.None, null, WhyNotDirect(peer, now, relay));
    }

    /// <summary>
    /// Starts probing a peer. A ping must not reach the peer's NAT before the peer has sent toward us, or
    /// that NAT (Linux conntrack) keeps a flow that moves the peer's own mapping to another port. So both
    /// sides first know each other's public address (NAT discovery done); a phase this side starts opens its
    /// own NAT and asks the peer, through the coordinator, to probe now; the peer, having opened its NAT
    /// before asking or answering, pings first, and our pings to its public address wait for that (or for
    /// the end of the fast phase, should the request be lost). A node whose own NAT maps by destination does
    /// not wait: its ping leaves from a port kept for the peer's address alone, which the peer never sends to
    /// before our ping tells it, so no flow of the peer's is moved; and a cone in front of the peer takes that
    /// ping at once, where waiting (a request lost in a stream's restart) left the pair to the hard-NAT search.
    /// </summary>
    private void StartPhase(PeerPaths peer, TimeSpan now, bool requestConnect)
    {
        peer.PhaseStarted = now;
        peer.NextProbe = null;
        if (LastNetcheck is null || peer.Mapping == Protos.V1.NatMapping.Unknown) return;
        peer.NextProbe = now;
        if (!requestConnect) return;
        var wait = Options.OpeningTtl > 0 && MyMapping != Protos.V1.NatMapping.EndpointDependent && !OpenedTowardUs(peer, now);
        peer.PublicPingsFrom = wait ? now + Options.FastProbePhase : now;
        SendProbeRound(peer, now);
        peer.NextProbe = now + Options.FastProbeInterval;
        RequestConnect(peer, now, force: true);
    }

    /// <summary>The peer asked us to connect within the fast phase: it had opened its NAT toward us first, so our pings may go at once.</summary>
    private bool OpenedTowardUs(PeerPaths peer, TimeSpan now) => peer.LastNotice is { } noticed && now - noticed < Options.FastProbePhase;

    /// <summary>
    /// A notice from a node not yet in the map: its delta (or the full map) can arrive just after, and the notice
    /// still says the node opened its NAT toward us. Kept for the fast phase, for a bounded number of nodes.
    /// </summary>
    private void RememberEarlyNotice(NodeKeyId id, TimeSpan now)
    {
        if (_earlyNotices.Count >= MaxEarlyNotices)
        {
            List<NodeKeyId>? stale = null;
            foreach (var (known, at) in _earlyNotices)
            {
                if (now - at >= Options.FastProbePhase) (stale ??= new()).Add(known);
            }
            if (stale is not null) foreach (var known in stale) _earlyNotices.Remove(known);
            if (_earlyNotices.Count >= MaxEarlyNotices) return;
        }
        _earlyNotices[id] = now;
    }

    private void RequestConnect(PeerPaths peer, TimeSpan now, bool force)
    {
        var interval = force ? TimeSpan.FromSeconds(1) : Options.ConnectRequestInterval;
        if (peer.LastConnectRequest is { } last && now - last < interval) return;
        peer.LastConnectRequest = now;
        _control.RequestConnect(peer.Key);
    }

    /// <summary>An address in 100::/64 (RFC 6666, discard-only) that names a peer and can never be a real destination.</summary>
    private static NetEndpoint SyntheticEndpoint(uint slot)
    {
        Span<byte> address = stackalloc byte[16];
        address[0] = 0x01;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(address[12..], slot);
        return NetEndpoint.FromAddressBytes(address, 0);
    }

    private UInt128 NewTransaction()
    {
        Span<byte> bytes = stackalloc byte[16];
        _entropy.Fill(bytes);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(bytes);
    }

    private void SweepPending(TimeSpan now)
    {
        _lastPendingSweep = now;
        List<UInt128>? old = null;
        foreach (var (transaction, pending) in _pending)
        {
            if (now - pending.SentAt > PendingLifetime) (old ??= new()).Add(transaction);
        }
        if (old is null) return;
        foreach (var transaction in old) _pending.Remove(transaction);
    }

    private void Reject(ProbeResult reason) => Interlocked.Increment(ref _probeRejections[(int)reason]);

    /// <summary>Where the bind sends one datagram for a peer: the direct path, the relay (a copy while the direct path is unconfirmed), or both.</summary>
    internal readonly record struct RouteChoice(PathKey? Direct, RelayLink? Relay, bool RelayOverStream, PublicKey Peer);

    private sealed record PendingPing(PeerPaths Peer, PathKey Path, Technique Technique, RelayLink? Relay, TimeSpan SentAt, bool User);
}
