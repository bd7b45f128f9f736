using System.Collections.Concurrent;
using Google.Protobuf;
using Mesh.Coordinator.Policy;
using Mesh.Protos.V1;
using Mesh.Transport;
using Mesh.WireGuard.Keys;

namespace Mesh.Coordinator.Sync;

/// <summary>
/// A replica's copy of the whole map, and, with a policy, each node's slice of it. Nodes with the same grants (the
/// same sources and targets: every user's laptops, every server with one tag) see the same peers, so a slice is
/// built and serialized once per kind of node, not per stream, and a delta is cut once per kind too. As the shared
/// map does, a slice serves for <see cref="SliceLifetime"/> changes, followed by its kind's cuts of the deltas since:
/// while a storm of streams opens, each delta would otherwise have every kind's slice built again. A node's own
/// record, with its filter, goes to it alone. The hub's lock guards it.
/// </summary>
internal sealed class MapViews
{
    /// <summary>How many changes a slice serves for, as the publisher's shared full map does.</summary>
    public const int SliceLifetime = 256;

    private readonly Dictionary<long, PeerView> _peers = new();
    /// <summary>Read without the hub's lock (the relay asks for every frame); written under it.</summary>
    private readonly ConcurrentDictionary<PublicKey, long> _idsByKey = new();
    private readonly List<Relay> _relays = new();
    private readonly List<string> _meshPrefixes = new();
    private readonly Dictionary<GrantKey, Slice> _slices = new();

    /// <summary>The cuts of the last <see cref="SliceLifetime"/> deltas, oldest first: what follows a slice made before them.</summary>
    private readonly Queue<DeltaCut> _cuts = new();

    public bool PerNode { get; private set; }
    public ulong Serial { get; private set; }

    public bool IsMember(PublicKey key) => _idsByKey.ContainsKey(key);

    public bool Contains(long nodeId) => _peers.ContainsKey(nodeId);

    public PeerView? Find(long nodeId) => _peers.GetValueOrDefault(nodeId);

    /// <summary>Starts again from a full map (an attach took it), then the deltas since.</summary>
    public void Reset(NetMap map)
    {
        _peers.Clear();
        _idsByKey.Clear();
        _slices.Clear();
        _cuts.Clear();
        foreach (var peer in map.Peers) Add(new PeerView(peer));
        _relays.Clear();
        _relays.AddRange(map.Relays);
        _meshPrefixes.Clear();
        _meshPrefixes.AddRange(map.MeshPrefixes);
        PerNode = map.PerNode;
        Serial = map.Serial;
    }

    /// <summary>Applies a delta; what it changed, to cut each kind of node's part of it.</summary>
    public DeltaCut Apply(NetMapDelta delta)
    {
        var cut = new DeltaCut(delta.Serial);
        Serial = delta.Serial;
        if (delta.Policy is { } policy)
        {
            // Every node's grants may change, and an empty grant key means "everyone" without a policy but "no one"
            // with one: no slice of before serves.
            PerNode = policy.PerNode;
            _slices.Clear();
            _cuts.Clear();
        }
        else
        {
            _cuts.Enqueue(cut);
            while (_cuts.Count > SliceLifetime) _cuts.Dequeue();
        }
        foreach (var peer in delta.PeersChanged)
        {
            var view = new PeerView(peer);
            if (view.Key is null) continue;
            var change = (Remove((long)peer.NodeId), view);
            cut.Changed.Add(change);
            cut.ChangedById[(long)peer.NodeId] = change;
            Add(view);
        }
        foreach (var id in delta.PeersRemoved)
        {
            if (Remove((long)id) is { } old) cut.Removed.Add(old);
        }
        foreach (var relay in delta.RelaysChanged)
        {
            _relays.RemoveAll(r => r.Id == relay.Id);
            _relays.Add(relay);
            cut.RelaysChanged.Add(relay);
        }
        foreach (var id in delta.RelaysRemoved)
        {
            _relays.RemoveAll(r => r.Id == id);
            cut.RelaysRemoved.Add(id);
        }
        return cut;
    }

    /// <summary>
    /// The messages the node's stream starts from: the full map (every peer without a policy; with one, the peers the
    /// node reaches or that reach it), then its kind's cuts of the deltas since that map was made. The map is shared
    /// by every node of the same grants that reached the same address (its STUN servers).
    /// </summary>
    public void FullMapFor(PeerView? node, IReadOnlyList<string> stunServers, List<SyncResponse> messages)
    {
        var grants = PerNode && node is not null ? node.Grants : GrantKey.Everyone;
        if (!_slices.TryGetValue(grants, out var slice) || !Follows(slice.Serial)) _slices[grants] = slice = NewSlice(grants);
        messages.Add(slice.For(stunServers));
        if (slice.Serial == Serial) return;
        var probe = node ?? new PeerView(new Peer());
        foreach (var cut in _cuts)
        {
            if (cut.Serial > slice.Serial && DeltaFor(probe, cut) is { } since) messages.Add(since);
        }
    }

    /// <summary>Whether the kept cuts bring a slice made at <paramref name="serial"/> up to now.</summary>
    private bool Follows(ulong serial) => serial == Serial || (Serial - serial <= SliceLifetime && _cuts.TryPeek(out var oldest) && oldest.Serial <= serial + 1);

    private Slice NewSlice(GrantKey grants)
    {
        var peers = new List<Peer>();
        foreach (var peer in _peers.Values)
        {
            if (!PerNode || grants.Sees(peer.Grants)) peers.Add(peer.Public);
        }
        return new Slice(Serial, PerNode, [.. _meshPrefixes], [.. _relays], peers);
    }

    /// <summary>A kind of node's map at one serial: its peers' records (never changed after), serialized once per STUN address.</summary>
    private sealed class Slice(ulong serial, bool perNode, List<string> meshPrefixes, List<Relay> relays, List<Peer> peers)
    {
        private readonly Dictionary<string, SyncResponse> _byStun = new(StringComparer.Ordinal);

        public ulong Serial { get; } = serial;

        public SyncResponse For(IReadOnlyList<string> stunServers)
        {
            var key = string.Join(",", stunServers);
            if (_byStun.TryGetValue(key, out var cached)) return cached;
            var map = new NetMap { Serial = Serial, PerNode = perNode };
            map.MeshPrefixes.AddRange(meshPrefixes);
            map.Relays.AddRange(relays);
            map.StunServers.AddRange(stunServers);
            map.Peers.AddRange(peers);
            return _byStun[key] = Handle(new SyncResponse { Full = map });
        }
    }

    /// <summary>The node's own record with its filter (with a policy), for its stream alone.</summary>
    public static SyncResponse SelfFor(PeerView node) => node.Self ??= Handle(new SyncResponse { Self = node.Record });

    /// <summary>The part of a delta a node of these grants sees (all of it without a policy), or null when none of it concerns it; cut once per kind of node.</summary>
    public SyncResponse? DeltaFor(PeerView node, DeltaCut cut)
    {
        if (cut.Cuts.TryGetValue(node.Grants, out var cached)) return cached;
        var delta = new NetMapDelta { Serial = cut.Serial };
        foreach (var (old, current) in cut.Changed)
        {
            if (Sees(node, current)) delta.PeersChanged.Add(current.Public);
            else if (old is not null && Sees(node, old)) delta.PeersRemoved.Add(old.Record.NodeId);
        }
        foreach (var old in cut.Removed)
        {
            if (Sees(node, old)) delta.PeersRemoved.Add(old.Record.NodeId);
        }
        delta.RelaysChanged.AddRange(cut.RelaysChanged);
        delta.RelaysRemoved.AddRange(cut.RelaysRemoved);
        var empty = delta.PeersChanged.Count == 0 && delta.PeersRemoved.Count == 0 && delta.RelaysChanged.Count == 0 && delta.RelaysRemoved.Count == 0;
        return cut.Cuts[node.Grants] = empty ? null : Handle(new SyncResponse { Delta = delta });
    }

    /// <summary>Without a policy every node sees every other (a cut's mode is the mode it was made in: a change of mode drops the kept cuts).</summary>
    private bool Sees(PeerView node, PeerView peer) => !PerNode || node.Grants.Sees(peer.Grants);

    private void Add(PeerView view)
    {
        if (view.Key is not { } key) return;
        _peers[(long)view.Record.NodeId] = view;
        _idsByKey[key] = (long)view.Record.NodeId;
    }

    private PeerView? Remove(long nodeId)
    {
        if (!_peers.Remove(nodeId, out var old)) return null;
        _idsByKey.TryRemove(old.Key!, out _);
        return old;
    }

    /// <summary>Serialized once, here; every stream that gets it sends these bytes.</summary>
    private static SyncResponse Handle(SyncResponse message)
    {
        ServiceDefinitions.Remember(message, message.ToByteArray());
        return message;
    }
}

/// <summary>A peer as the hub keeps it: its whole record (for itself), the record peers get (without its filter), and its grants.</summary>
internal sealed class PeerView
{
    public PeerView(Peer record)
    {
        Record = record;
        if (record.NodeKey.Length == Key32.Size) Key = new PublicKey(record.NodeKey.Span);
        Grants = new GrantKey([.. record.PolicySources], [.. record.PolicyTargets]);
        if (record.Filter is null) Public = record;
        else
        {
            Public = record.Clone();
            Public.Filter = null;
        }
    }

    public Peer Record { get; }
    public Peer Public { get; }
    public PublicKey? Key { get; }
    public GrantKey Grants { get; }
    public SyncResponse? Self { get; set; }
}

/// <summary>A node's grants as the map carries them: what decides which peers it sees, and so which slice it gets.</summary>
internal sealed class GrantKey(ulong[] sources, ulong[] targets) : IEquatable<GrantKey>
{
    public static readonly GrantKey Everyone = new([], []);

    private readonly int _hash = Hash(sources, targets);

    public bool Sees(GrantKey other) => NodeGrants.Sees(sources, targets, other.Sources, other.Targets);

    public ulong[] Sources => sources;
    public ulong[] Targets => targets;

    public bool Equals(GrantKey? other) => other is not null && _hash == other._hash && sources.AsSpan().SequenceEqual(other.Sources) && targets.AsSpan().SequenceEqual(other.Targets);

    public override bool Equals(object? obj) => Equals(obj as GrantKey);

    public override int GetHashCode() => _hash;

    private static int Hash(ulong[] sources, ulong[] targets)
    {
        var hash = new HashCode();
        foreach (var s in sources) hash.Add(s);
        hash.Add(-1);
        foreach (var t in targets) hash.Add(t);
        return hash.ToHashCode();
    }
}

/// <summary>What one delta changed, and its cut for each kind of node (made when a stream of that kind needs it).</summary>
internal sealed class DeltaCut(ulong serial)
{
    public ulong Serial { get; } = serial;
    public List<(PeerView? Old, PeerView Current)> Changed { get; } = new();
    public Dictionary<long, (PeerView? Old, PeerView Current)> ChangedById { get; } = new();
    public List<PeerView> Removed { get; } = new();
    public List<Relay> RelaysChanged { get; } = new();
    public List<string> RelaysRemoved { get; } = new();
    public Dictionary<GrantKey, SyncResponse?> Cuts { get; } = new();
}
