using System.Net;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Mesh.Coordinator.Policy;
using Mesh.Coordinator.Store;
using Mesh.Protos.V1;
using Mesh.WireGuard.Keys;

namespace Mesh.Coordinator.Control;

/// <summary>
/// One replica's hub of sync streams as the publisher reaches it: every call is a notification, never awaited
/// for an answer (an observer reference in a silo, the hub itself in the NAT lab).
/// </summary>
public interface IHubLink
{
    /// <summary>A serialized SyncResponse (a delta) for every stream of the hub, in serial order.</summary>
    void Publish(byte[] message);

    /// <summary>A serialized SyncResponse (a connect notice) for the stream of one node.</summary>
    void Connect(long nodeId, byte[] message);

    /// <summary>The node's stream ends with this refusal.</summary>
    void EndSession(long nodeId, Problem reason);
}

/// <summary>
/// Where a hub starts from: the full map (for an attach), then the deltas after it, up to <paramref name="Serial"/>,
/// numbered in the serials of the publisher <paramref name="Epoch"/> names (the first serial of its activation):
/// serials of another activation do not follow these, and may even be lower (a replica whose clock is behind took the
/// publisher over). <paramref name="PerNode"/>: a policy gives each node its own slice. A stream's start carries no
/// map: the hub starts a stream from its own copy of the map, unless the agent <paramref name="Resumes"/> with the
/// deltas after its serial.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record SessionStart([property: Id(0)] byte[]? FullMap, [property: Id(1)] IReadOnlyList<byte[]> Deltas, [property: Id(2)] ulong Serial, [property: Id(3)] ulong Epoch,
    [property: Id(4)] bool PerNode = false, [property: Id(5)] bool Resumes = false);

/// <summary>A node as presence sees it: where its stream is, and what it last said of its reachability.</summary>
[GenerateSerializer, Immutable]
public sealed record NodePresence([property: Id(0)] long NodeId, [property: Id(1)] bool Online, [property: Id(2)] byte[] Endpoints);

/// <summary>An open stream a hub reports when it attaches (again), so a publisher that restarted knows who is online.</summary>
[GenerateSerializer, Immutable]
public sealed record OpenStream([property: Id(0)] NodeRecord Node, [property: Id(1)] byte[] Endpoints);

/// <summary>
/// The netmap and its changes: which nodes are peers (approved), where each one's stream is, what it last said of
/// its reachability, and the relays of every replica; changes within the batch window become one delta with the next
/// serial, serialized once and sent to every hub; the last deltas are kept so agents can resume. With a policy that
/// has rules, each peer record carries the node's grants (computed from that node alone, so a change to one node
/// recomputes nothing else) and hubs cut each stream's slice of the map from them. Not thread-safe: one owner (the
/// publisher grain, or the NAT lab's one thread) calls it.
/// </summary>
public sealed class NetmapPublisher
{
    private const int FullMapRebuildChanges = 256;
    private readonly MeshOptions _options;
    private readonly IPresenceSink _presence;
    private readonly IWorkScheduler _scheduler;
    private readonly Dictionary<long, PeerState> _peers = new();
    private readonly Dictionary<PublicKey, long> _peerIdsByKey = new();
    private readonly Dictionary<string, HubState> _hubs = new(StringComparer.Ordinal);
    private readonly Queue<(ulong Serial, byte[] Delta)> _history = new();
    private readonly Dictionary<long, PeerState> _pendingChanged = new();
    private readonly HashSet<ulong> _pendingRemoved = new();
    private readonly Dictionary<string, Relay> _pendingRelays = new(StringComparer.Ordinal);
    private readonly HashSet<string> _pendingRelaysRemoved = new(StringComparer.Ordinal);
    private readonly Dictionary<long, DateTimeOffset> _deleted = new();
    private readonly Dictionary<long, string> _users = new();
    private readonly TimeProvider _time;
    private AclPolicy? _policy;
    private ulong _policyVersion;
    private bool _policyChanged;
    private bool _modeChanging;
    private ulong _modeSerial;
    private IDisposable? _flush;
    private readonly Traversal.TokenBucket _deltas;
    private readonly long _started;
    private ulong _serial;
    private byte[]? _fullMap;
    private ulong _fullMapSerial;

    private static readonly TimeSpan DeletedLifetime = TimeSpan.FromMinutes(10);
    private const int MaxDeletedRemembered = 1024;

    public NetmapPublisher(MeshOptions options, IEnumerable<NodeRecord> nodes, IEnumerable<UserRecord> users, (AclPolicy Policy, ulong Version)? policy,
        IPresenceSink presence, IWorkScheduler scheduler, TimeProvider time)
    {
        if (options.ChangeHistory <= FullMapRebuildChanges) throw new ArgumentException($"ChangeHistory must exceed {FullMapRebuildChanges}.", nameof(options));
        if (options.DeltasPerSecond <= 0 || options.DeltaBurst < 1) throw new ArgumentException("DeltasPerSecond must be above 0 and DeltaBurst at least 1.", nameof(options));
        _options = options;
        _presence = presence;
        _scheduler = scheduler;
        _time = time;
        foreach (var user in users) _users[user.Id] = user.Name;
        (_policy, _policyVersion) = policy is { } p ? (p.Policy, p.Version) : (null, 0);
        foreach (var node in nodes)
        {
            // Hubs take these from the first map: only what changes after goes out by delta.
            if (node.State == NodeState.Approved) Track(new PeerState(node) { RecordChanged = false });
        }
        // Serials continue above any earlier run's: a reconnecting agent's old serial can't match a new change.
        _serial = (ulong)time.GetUtcNow().ToUnixTimeMilliseconds() * 1000;
        Epoch = _serial;
        _deltas = new Traversal.TokenBucket(options.DeltaBurst, options.DeltasPerSecond);
        _started = time.GetTimestamp();
    }

    public ulong Serial => _serial;

    /// <summary>This publisher's first serial, which names its serials apart from another activation's.</summary>
    public ulong Epoch { get; }

    public int OnlineCount => _peers.Values.Count(p => p.Hub is not null);

    public IReadOnlyCollection<string> Hubs => _hubs.Keys;

    /// <summary>Whether each node gets its own slice of the map: a policy with rules is set.</summary>
    public bool PerNode => _policy?.Rules is not null;

    public ulong PolicyVersion => _policyVersion;

    /// <summary>A new policy (or none): every peer's grants change, and the next delta tells the hubs to give every stream a new map.</summary>
    /// <remarks>
    /// Only the nodes whose grants the new policy changes are republished (a rule's token is its index, so an edit
    /// leaves the grants of the nodes it does not touch as they were): a small edit is a small delta, at any size of
    /// mesh. Into or out of per-node maps every node changes.
    /// </remarks>
    public void SetPolicy(AclPolicy? policy, ulong version)
    {
        var wasPerNode = PerNode;
        _policy = policy;
        _policyVersion = version;
        _policyChanged = true;
        _modeChanging |= wasPerNode != PerNode;
        _fullMap = null;
        foreach (var peer in _peers.Values)
        {
            var before = peer.Grants;
            peer.Grants = null;
            if (wasPerNode != PerNode || (PerNode && (before is null || !before.SameAs(GrantsOf(peer))))) Changed(peer, record: true);
        }
        SchedulePublish();
    }

    /// <summary>A user was made or renamed: the policy names users, so its nodes' grants may change.</summary>
    public void UserNamed(long userId, string name)
    {
        _users[userId] = name;
        foreach (var peer in _peers.Values)
        {
            if (peer.Record.UserId == userId) Changed(peer, record: true);
        }
    }

    /// <summary>A hub attached or attached again (it does so every few seconds), with its relay and its open streams.</summary>
    public void AttachHub(string hubId, IHubLink link, Relay? relay, IReadOnlyList<OpenStream> streams)
    {
        var isNew = !_hubs.TryGetValue(hubId, out var hub);
        hub ??= new HubState(link);
        hub.Link = link;
        _hubs[hubId] = hub;
        if (relay is not null && (isNew || !relay.Equals(hub.Relay)))
        {
            hub.Relay = relay;
            _pendingRelaysRemoved.Remove(relay.Id);
            _pendingRelays[relay.Id] = relay;
            SchedulePublish();
        }
        foreach (var stream in streams)
        {
            var peer = Upsert(stream.Node);
            if (peer is null || peer.Hub is not null) continue;
            peer.Hub = hubId;
            peer.Endpoints = Endpoints.Parser.ParseFrom(stream.Endpoints);
            _presence.NodeOnline(peer.Record.Id);
            Changed(peer, record: false);
        }
    }

    /// <summary>A hub is gone (its replica died or stopped): its streams are offline, its relay leaves the map.</summary>
    public void DetachHub(string hubId, DateTime now)
    {
        if (!_hubs.Remove(hubId, out var hub)) return;
        if (hub.Relay is { } relay)
        {
            _pendingRelays.Remove(relay.Id);
            _pendingRelaysRemoved.Add(relay.Id);
            SchedulePublish();
        }
        foreach (var peer in _peers.Values)
        {
            if (peer.Hub == hubId) GoOffline(peer, now);
        }
    }

    /// <summary>
    /// A node's stream opened at a hub: it is online there (a stream it had elsewhere ends), and the stream resumes with
    /// the deltas after the agent's serial, or starts from the hub's copy of the map when those are gone (a map in every
    /// start was megabytes per stream between replicas at 10,000 nodes).
    /// </summary>
    public Result<SessionStart> OpenSession(string hubId, NodeRecord node, byte[] endpoints, ulong lastSerial)
    {
        if (!_hubs.ContainsKey(hubId)) return new Problem(Failure.Detached, "This replica is not attached to the mesh yet; try again.");
        var peer = Upsert(node);
        if (peer is null) return Problem.Unauthenticated("The node is not approved.");
        if (peer.Hub is { } other && other != hubId && _hubs.TryGetValue(other, out var previous))
        {
            previous.Link.EndSession(node.Id, new Problem(Failure.Aborted, "Replaced by a newer stream of the same node."));
        }
        var wasOffline = peer.Hub is null;
        peer.Hub = hubId;
        peer.Endpoints = Endpoints.Parser.ParseFrom(endpoints);
        if (wasOffline) _presence.NodeOnline(node.Id);
        Changed(peer, record: false);
        // An agent does not resume across a change into or out of per-node maps: the deltas before it are of the
        // other mode (with a policy they carry each changed node's filter, for hubs only).
        if (!PerNode && lastSerial >= _modeSerial && MissedDeltas(lastSerial) is { } missed) return new SessionStart(null, missed, _serial, Epoch, PerNode, Resumes: true);
        return new SessionStart(null, [], _serial, Epoch, PerNode);
    }

    public void UpdateEndpoints(long nodeId, string hubId, byte[] endpoints)
    {
        if (!_peers.TryGetValue(nodeId, out var peer) || peer.Hub != hubId) return;
        peer.Endpoints = Endpoints.Parser.ParseFrom(endpoints);
        Changed(peer, record: false);
    }

    /// <summary>The node's stream at this hub ended; a stream it opened elsewhere since is left alone.</summary>
    public void CloseSession(long nodeId, string hubId, DateTime now)
    {
        if (_peers.TryGetValue(nodeId, out var peer) && peer.Hub == hubId) GoOffline(peer, now);
    }

    private void GoOffline(PeerState peer, DateTime now)
    {
        peer.Hub = null;
        peer.Record = peer.Record with { LastSeen = now };
        _presence.NodeOffline(peer.Record.Id, now);
        Changed(peer, record: false);
    }

    /// <summary>Tells the peer (if it is online) that this node wants to connect now, with this node's current candidates.</summary>
    public bool RequestConnection(long fromNodeId, PublicKey peerKey)
    {
        if (!_peers.TryGetValue(fromNodeId, out var from) || from.Hub is null) return false;
        if (!_peerIdsByKey.TryGetValue(peerKey, out var toNodeId)) return false;
        if (!_peers.TryGetValue(toNodeId, out var to) || to.Hub is null || !_hubs.TryGetValue(to.Hub, out var hub)) return false;
        if (PerNode && GrantsOf(from) is var a && GrantsOf(to) is var b && !NodeGrants.Sees(a.Sources, a.Targets, b.Sources, b.Targets)) return false;
        var notice = new SyncResponse { Connect = new ConnectNotice { PeerKey = ByteString.CopyFrom(from.Record.NodeKey), Endpoints = from.Endpoints } };
        hub.Link.Connect(toNodeId, notice.ToByteArray());
        return true;
    }

    /// <summary>The registry changed a node: approved nodes are peers, others leave the map.</summary>
    public void NodeUpdated(NodeRecord record)
    {
        if (record.State != NodeState.Approved)
        {
            NodeDeleted(record.Id);
            return;
        }
        if (_peers.TryGetValue(record.Id, out var peer)) peer.Record = record;
        else if (RecentlyDeleted(record.Id)) return;
        else Track(peer = new PeerState(record));
        Changed(peer, record: true);
    }

    public void NodeDeleted(long nodeId)
    {
        RememberDeleted(nodeId);
        if (!_peers.Remove(nodeId, out var peer)) return;
        _peerIdsByKey.Remove(new PublicKey(peer.Record.NodeKey));
        _pendingChanged.Remove(nodeId);
        _pendingRemoved.Add((ulong)nodeId);
        SchedulePublish();
    }

    public void EndSession(long nodeId, Problem reason)
    {
        if (_peers.TryGetValue(nodeId, out var peer) && peer.Hub is { } hubId && _hubs.TryGetValue(hubId, out var hub)) hub.Link.EndSession(nodeId, reason);
    }

    /// <summary>Every peer's presence, for admins.</summary>
    public List<NodePresence> Presence()
    {
        var list = new List<NodePresence>(_peers.Count);
        foreach (var peer in _peers.Values) list.Add(new NodePresence(peer.Record.Id, peer.Hub is not null, peer.Endpoints.ToByteArray()));
        return list;
    }

    /// <summary>The current full map for a hub that attaches (its relay serves exactly the peers in it).</summary>
    /// <summary>The relays of the attached replicas, as the map lists them.</summary>
    public List<Relay> Relays()
    {
        var relays = new List<Relay>(_hubs.Count);
        foreach (var hub in _hubs.Values)
        {
            if (hub.Relay is { } relay) relays.Add(relay);
        }
        return relays;
    }

    /// <summary>
    /// The full map with the deltas since (the map is shared and may be a few changes old), as a hub takes it when it
    /// attaches. Changes still batched go out first, whatever the rate: the hub ends the streams of nodes not in it.
    /// </summary>
    public SessionStart CurrentMap()
    {
        Flush();
        var (map, serial) = FullMap();
        return new SessionStart(map, MissedDeltas(serial) ?? [], _serial, Epoch, PerNode);
    }

    private PeerState? Upsert(NodeRecord node)
    {
        if (node.State != NodeState.Approved) return null;
        if (_peers.TryGetValue(node.Id, out var peer)) return peer;
        if (RecentlyDeleted(node.Id)) return null;
        Track(peer = new PeerState(node));
        return peer;
    }

    /// <summary>
    /// A deleted node is not taken back from a hub's report of its open streams, from a stream that opened as it was
    /// deleted, or from an update that overtook the delete: each record of it is older than the delete (a hub that attached while the node's stream was still
    /// open brought it back, online, and the attach's map then kept its stream open: the ClusterTests failure of
    /// 2026-12-04). Node ids are never reused; the memory is bounded by forgetting deletes after
    /// <see cref="DeletedLifetime"/>, by when every hub has attached many times without the node.
    /// </summary>
    private void RememberDeleted(long nodeId)
    {
        var now = _time.GetUtcNow();
        if (_deleted.Count >= MaxDeletedRemembered)
        {
            List<long>? old = null;
            foreach (var (id, at) in _deleted)
            {
                if (now - at >= DeletedLifetime) (old ??= new()).Add(id);
            }
            if (old is not null) foreach (var id in old) _deleted.Remove(id);
        }
        _deleted[nodeId] = now;
    }

    private bool RecentlyDeleted(long nodeId) => _deleted.TryGetValue(nodeId, out var at) && _time.GetUtcNow() - at < DeletedLifetime;

    /// <summary>A node's key never changes (a new key registers a new node), so the key index is kept only here and on delete.</summary>
    private void Track(PeerState peer)
    {
        _peers[peer.Record.Id] = peer;
        _peerIdsByKey[new PublicKey(peer.Record.NodeKey)] = peer.Record.Id;
    }

    /// <summary>
    /// The peer changed: its record (<paramref name="record"/>: name, tags, user, grants), or only its presence (online,
    /// last seen, endpoints), which goes out by id, a tenth of the bytes, to every stream that sees it.
    /// </summary>
    private void Changed(PeerState peer, bool record)
    {
        peer.Peer = null;
        peer.RecordChanged |= record;
        if (record) peer.Grants = null;
        _pendingRemoved.Remove((ulong)peer.Record.Id);
        _pendingChanged[peer.Record.Id] = peer;
        SchedulePublish();
    }

    private void SchedulePublish()
    {
        if (_options.ChangeBatchWindow <= TimeSpan.Zero) Flush();
        else _flush ??= _scheduler.Schedule(FlushDelay(), () =>
        {
            Flush();
            return Task.CompletedTask;
        });
    }

    /// <summary>The batch window, or longer while the deltas of a storm have used their burst: until the next is due at the steady rate.</summary>
    private TimeSpan FlushDelay()
    {
        var due = _deltas.UntilToken(Monotonic);
        return due > _options.ChangeBatchWindow ? due : _options.ChangeBatchWindow;
    }

    /// <summary>Time for the delta rate, from the monotonic clock: a wall clock stepped back would hold deltas for as long as the step.</summary>
    private TimeSpan Monotonic => _time.GetElapsedTime(_started);

    /// <summary>Sends what changed since the last delta as one delta with the next serial, kept for resuming agents.</summary>
    private void Flush()
    {
        _flush?.Dispose();
        _flush = null;
        if (_pendingChanged.Count == 0 && _pendingRemoved.Count == 0 && _pendingRelays.Count == 0 && _pendingRelaysRemoved.Count == 0 && !_policyChanged) return;
        var delta = new NetMapDelta();
        if (_policyChanged) delta.Policy = new PolicyChange { PerNode = PerNode, Version = _policyVersion };
        if (_modeChanging) _modeSerial = _serial + 1;
        _policyChanged = _modeChanging = false;
        foreach (var peer in _pendingChanged.Values)
        {
            if (peer.RecordChanged) delta.PeersChanged.Add(PeerOf(peer));
            else delta.Presence.Add(PresenceOf(peer));
            peer.RecordChanged = false;
        }
        delta.PeersRemoved.AddRange(_pendingRemoved);
        delta.RelaysChanged.AddRange(_pendingRelays.Values);
        delta.RelaysRemoved.AddRange(_pendingRelaysRemoved);
        if (_pendingRelays.Count > 0 || _pendingRelaysRemoved.Count > 0) _fullMap = null;
        _pendingChanged.Clear();
        _pendingRemoved.Clear();
        _pendingRelays.Clear();
        _pendingRelaysRemoved.Clear();
        delta.Serial = ++_serial;
        // A flush spends a token even when it came due a hair before one was whole, or an attach forced it.
        _deltas.Spend(Monotonic);
        var bytes = new SyncResponse { Delta = delta }.ToByteArray();
        _history.Enqueue((delta.Serial, bytes));
        while (_history.Count > _options.ChangeHistory) _history.Dequeue();
        foreach (var hub in _hubs.Values) hub.Link.Publish(bytes);
    }

    /// <summary>The deltas after <paramref name="lastSerial"/>, or null when the agent is too far behind (or new) to resume.</summary>
    private List<byte[]>? MissedDeltas(ulong lastSerial)
    {
        if (lastSerial == 0 || lastSerial > _serial) return null;
        if (lastSerial < _serial && (_history.Count == 0 || _history.Peek().Serial > lastSerial + 1)) return null;
        var missed = new List<byte[]>();
        foreach (var (serial, delta) in _history)
        {
            if (serial > lastSerial) missed.Add(delta);
        }
        return missed;
    }

    /// <summary>
    /// The full map (serialized) and its serial; the caller follows it with the deltas since. It is rebuilt only every
    /// <see cref="FullMapRebuildChanges"/> changes, so hubs attaching every few seconds share a few maps.
    /// </summary>
    private (byte[] Map, ulong Serial) FullMap()
    {
        if (_fullMap is { } cached && _serial - _fullMapSerial < FullMapRebuildChanges) return (cached, _fullMapSerial);
        var map = new NetMap { Serial = _serial, MeshPrefixes = { _options.Ipv4Prefix.ToString() }, PerNode = PerNode };
        if (_options.Ipv6Prefix is { } ipv6) map.MeshPrefixes.Add(ipv6.ToString());
        foreach (var peer in _peers.Values) map.Peers.Add(PeerOf(peer));
        map.Relays.AddRange(Relays());
        (_fullMap, _fullMapSerial) = (new SyncResponse { Full = map }.ToByteArray(), _serial);
        return (_fullMap, _fullMapSerial);
    }

    /// <summary>
    /// The node's record; built once per change and shared, never modified after. With a policy it carries the node's
    /// grants, its filter included: hubs send that only to the node itself and strip it from what peers get.
    /// </summary>
    private Peer PeerOf(PeerState state)
    {
        if (state.Peer is { } cached) return cached;
        var record = state.Record;
        var peer = new Peer
        {
            NodeId = (ulong)record.Id,
            NodeKey = ByteString.CopyFrom(record.NodeKey),
            Name = record.Name,
            Addresses = { record.Ipv4 + "/32", record.Ipv6 + "/128" },
            AllowedIps = { record.Ipv4 + "/32", record.Ipv6 + "/128" },
            Endpoints = state.Endpoints,
            Online = state.Hub is not null,
            Tags = { record.Tags },
            User = UserName(record) ?? "",
        };
        if (record.LastSeen is { } seen) peer.LastSeen = Timestamp.FromDateTime(seen);
        if (PerNode)
        {
            var grants = GrantsOf(state);
            peer.PolicySources.AddRange(grants.Sources);
            peer.PolicyTargets.AddRange(grants.Targets);
            peer.Filter = new PacketFilter();
            foreach (var rule in grants.Filter)
            {
                var filterRule = new FilterRule { Source = rule.Source };
                foreach (var protocol in rule.Protocols) filterRule.Protocols.Add(protocol);
                foreach (var range in rule.Ports) filterRule.Ports.Add(new Protos.V1.PortRange { First = range.First, Last = range.Last });
                peer.Filter.Rules.Add(filterRule);
            }
        }
        state.Peer = peer;
        return peer;
    }

    private static PeerPresence PresenceOf(PeerState state)
    {
        var presence = new PeerPresence { NodeId = (ulong)state.Record.Id, Online = state.Hub is not null, Endpoints = state.Endpoints };
        if (state.Record.LastSeen is { } seen) presence.LastSeen = Timestamp.FromDateTime(seen);
        return presence;
    }

    private NodeGrants GrantsOf(PeerState state) => state.Grants ??= NodeGrants.Of(_policy!, PolicyNodeOf(state.Record));

    /// <summary>The node as the policy sees it. Keys may name tags with or without Tailscale's "tag:" (stored as given): both are the policy's tag:NAME.</summary>
    private PolicyNode PolicyNodeOf(NodeRecord record)
    {
        var tags = new string[record.Tags.Count];
        for (var i = 0; i < tags.Length; i++) tags[i] = record.Tags[i].StartsWith("tag:", StringComparison.Ordinal) ? record.Tags[i] : "tag:" + record.Tags[i];
        var owned = tags.Length == 0;
        return new(record.Id, owned ? record.UserId : null, owned ? UserName(record) : null, tags, IPAddress.Parse(record.Ipv4), IPAddress.Parse(record.Ipv6));
    }

    /// <summary>A node's user; a node owned by its tags has none in the policy's eyes, as in Tailscale.</summary>
    private string? UserName(NodeRecord record) => record.UserId is { } id && _users.TryGetValue(id, out var name) ? name : null;

    private sealed class PeerState(NodeRecord record)
    {
        public NodeRecord Record { get; set; } = record;
        public Endpoints Endpoints { get; set; } = new();
        public string? Hub { get; set; }
        public Peer? Peer { get; set; }
        public NodeGrants? Grants { get; set; }

        /// <summary>More than the presence changed since the last delta (a new peer is all new): the next delta carries the whole record.</summary>
        public bool RecordChanged { get; set; } = true;
    }

    private sealed class HubState(IHubLink link)
    {
        public IHubLink Link { get; set; } = link;
        public Relay? Relay { get; set; }
    }
}
