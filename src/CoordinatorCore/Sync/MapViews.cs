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
/// record, with its filter, goes to it alone. Each is made in the form the stream reads (<see cref="MapForm"/>): the
/// compact form has maps in parts of at most <see cref="MaxPartBytes"/> and presence by id; the records form, of the
/// agents before it, whole maps and whole records. The hub's lock guards it.
/// </summary>
internal sealed class MapViews
{
    /// <summary>How many changes a slice serves for, as the publisher's shared full map does.</summary>
    public const int SliceLifetime = 256;

    /// <summary>
    /// The most bytes of one part of a compact map (unless one record alone is more): the coordinator holds a few
    /// parts of a map in a stream's buffers rather than the whole map (2.5 MB at 10,000 peers, times every stream
    /// that opens at once).
    /// </summary>
    public const int MaxPartBytes = 16 * 1024;

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
            var change = new PeerChange(Remove((long)peer.NodeId), view, null);
            cut.Changed.Add(change);
            cut.ChangedById[(long)peer.NodeId] = change;
            Add(view);
        }
        foreach (var presence in delta.Presence)
        {
            if (!_peers.TryGetValue((long)presence.NodeId, out var old)) continue;
            var change = new PeerChange(old, old.With(presence), presence);
            cut.Changed.Add(change);
            cut.ChangedById[(long)presence.NodeId] = change;
            _peers[(long)presence.NodeId] = change.Current;
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

    /// <summary>The grants a node's slice and cuts are made for: its own with a policy, everyone's without.</summary>
    public GrantKey GrantsOf(PeerView? node) => PerNode && node is not null ? node.Grants : GrantKey.Everyone;

    /// <summary>
    /// The messages the node's stream starts from: the full map (every peer without a policy; with one, the peers the
    /// node reaches or that reach it), then its kind's cuts of the deltas since that map was made. The map is shared
    /// by every node of the same grants that reached the same address (its STUN servers).
    /// </summary>
    public void FullMapFor(GrantKey grants, IReadOnlyList<string> stunServers, MapForm form, List<SyncResponse> messages)
    {
        if (!_slices.TryGetValue(grants, out var slice) || !Follows(slice.Serial)) _slices[grants] = slice = NewSlice(grants);
        messages.AddRange(slice.For(stunServers, form));
        if (slice.Serial == Serial) return;
        foreach (var cut in _cuts)
        {
            if (cut.Serial > slice.Serial && DeltaFor(grants, cut, form) is { } since) messages.Add(since);
        }
    }


    /// <summary>Whether the kept cuts bring a slice made at <paramref name="serial"/> up to now.</summary>
    private bool Follows(ulong serial) => serial == Serial || (Serial - serial <= SliceLifetime && _cuts.TryPeek(out var oldest) && oldest.Serial <= serial + 1);

    private Slice NewSlice(GrantKey grants)
    {
        var peers = new List<PeerView>();
        foreach (var peer in _peers.Values)
        {
            if (!PerNode || grants.Sees(peer.Grants)) peers.Add(peer);
        }
        return new Slice(Serial, PerNode, [.. _meshPrefixes], [.. _relays], peers);
    }

    /// <summary>A kind of node's map at one serial: its peers' records (never changed after), serialized once per STUN address and form.</summary>
    private sealed class Slice(ulong serial, bool perNode, List<string> meshPrefixes, List<Relay> relays, List<PeerView> peers)
    {
        private readonly Dictionary<(string, MapForm), List<SyncResponse>> _byStun = new();

        public ulong Serial { get; } = serial;

        public List<SyncResponse> For(IReadOnlyList<string> stunServers, MapForm form)
        {
            var key = (string.Join(",", stunServers), form);
            if (_byStun.TryGetValue(key, out var cached)) return cached;
            var map = new NetMap { Serial = Serial, PerNode = perNode };
            map.MeshPrefixes.AddRange(meshPrefixes);
            map.Relays.AddRange(relays);
            map.StunServers.AddRange(stunServers);
            if (form == MapForm.Compact) return _byStun[key] = Parts(map);
            foreach (var peer in peers) map.Peers.Add(peer.Public);
            return _byStun[key] = [Handle(new SyncResponse { Full = map })];
        }

        /// <summary>
        /// The compact map: parts of at most <see cref="MaxPartBytes"/>, the first with everything but peers; each
        /// peer is its compact record with the index of its grant set, which goes in the part of the first peer
        /// that names it.
        /// </summary>
        private List<SyncResponse> Parts(NetMap fields)
        {
            var indices = new uint[peers.Count];
            var sets = new Dictionary<GrantKey, uint>();
            var parts = new List<SyncResponse>();
            var first = 0;
            var size = fields.CalculateSize();
            for (var i = 0; i < peers.Count; i++)
            {
                GrantSet? set = null;
                if (perNode && !sets.TryGetValue(peers[i].Grants, out indices[i]))
                {
                    var grants = peers[i].Grants;
                    sets[grants] = indices[i] = (uint)sets.Count + 1;
                    set = grants.ToGrantSet();
                }
                var entry = EntrySize(peers[i].CompactBytes.Length, indices[i]) + (set is null ? 0 : 1 + CodedOutputStream.ComputeMessageSize(set));
                if (i > first && PartFraming + size + entry > MaxPartBytes)
                {
                    fields.Continued = true;
                    parts.Add(Part(fields, indices, first, i));
                    fields = new NetMap { Serial = Serial, Part = fields.Part + 1 };
                    (first, size) = (i, fields.CalculateSize());
                }
                if (set is not null) fields.GrantSets.Add(set);
                size += entry;
            }
            parts.Add(Part(fields, indices, first, peers.Count));
            return parts;
        }

        /// <summary>A SyncResponse's tag and the longest length of a part, and the flag that more parts follow.</summary>
        private const int PartFraming = 4 + 2;

        /// <summary>
        /// A part's bytes, written here rather than by protobuf so each peer's record is serialized once for every
        /// map it is in: the part's fields, then its peers (protobuf merges a message's fields across its bytes,
        /// so the index of a peer's grant set goes after its record's bytes).
        /// </summary>
        private SyncResponse Part(NetMap fields, uint[] indices, int from, int to)
        {
            var head = fields.ToByteArray();
            var length = head.Length;
            for (var i = from; i < to; i++) length += EntrySize(peers[i].CompactBytes.Length, indices[i]);
            var bytes = new byte[1 + CodedOutputStream.ComputeLengthSize(length) + length];
            var at = Varint(bytes, 0, WireFormat.MakeTag(SyncResponse.FullFieldNumber, WireFormat.WireType.LengthDelimited));
            at = Varint(bytes, at, (uint)length);
            head.CopyTo(bytes, at);
            at += head.Length;
            for (var i = from; i < to; i++)
            {
                var record = peers[i].CompactBytes;
                at = Varint(bytes, at, WireFormat.MakeTag(NetMap.PeersFieldNumber, WireFormat.WireType.LengthDelimited));
                at = Varint(bytes, at, (uint)(record.Length + IndexSize(indices[i])));
                record.CopyTo(bytes, at);
                at += record.Length;
                if (indices[i] == 0) continue;
                at = Varint(bytes, at, WireFormat.MakeTag(Peer.GrantSetFieldNumber, WireFormat.WireType.Varint));
                at = Varint(bytes, at, indices[i]);
            }
            var handle = new SyncResponse();
            ServiceDefinitions.Remember(handle, bytes);
            return handle;
        }

        private static int EntrySize(int record, uint index)
        {
            var inner = record + IndexSize(index);
            return 1 + CodedOutputStream.ComputeLengthSize(inner) + inner;
        }

        private static int IndexSize(uint index) => index == 0 ? 0 : 1 + CodedOutputStream.ComputeUInt32Size(index);

        private static int Varint(byte[] bytes, int at, uint value)
        {
            while (value >= 0x80)
            {
                bytes[at++] = (byte)(value | 0x80);
                value >>= 7;
            }
            bytes[at++] = (byte)value;
            return at;
        }
    }

    /// <summary>The node's own record with its filter (with a policy), for its stream alone.</summary>
    public static SyncResponse SelfFor(PeerView node) => node.Self ??= Handle(new SyncResponse { Self = node.Public });

    /// <summary>
    /// The part of a delta a node of these grants sees (all of it without a policy), in the stream's form, or null
    /// when none of it concerns it; cut once per kind of node and form.
    /// </summary>
    public SyncResponse? DeltaFor(GrantKey grants, DeltaCut cut, MapForm form)
    {
        if (cut.Cuts.TryGetValue((grants, form), out var cached)) return cached;
        var delta = new NetMapDelta { Serial = cut.Serial };
        Dictionary<GrantKey, uint>? sets = null;
        foreach (var (old, current, presence) in cut.Changed)
        {
            if (Sees(grants, current))
            {
                if (form == MapForm.Records) delta.PeersChanged.Add(current.Public);
                else if (presence is not null) delta.Presence.Add(presence);
                else if (old is not null && Sees(grants, old) && old.CompactBytes.AsSpan().SequenceEqual(current.CompactBytes))
                {
                    // Only its grants changed (a policy edit): by id, and the grants by index, as a compact map has them.
                    sets ??= new();
                    if (!sets.TryGetValue(current.Grants, out var index))
                    {
                        sets[current.Grants] = index = (uint)sets.Count + 1;
                        delta.GrantSets.Add(current.Grants.ToGrantSet());
                    }
                    delta.GrantsChanged.Add(new PeerGrants { NodeId = current.Public.NodeId, GrantSet = index });
                }
                else delta.PeersChanged.Add(current.Public);
            }
            else if (old is not null && Sees(grants, old)) delta.PeersRemoved.Add(old.Public.NodeId);
        }
        foreach (var old in cut.Removed)
        {
            if (Sees(grants, old)) delta.PeersRemoved.Add(old.Public.NodeId);
        }
        delta.RelaysChanged.AddRange(cut.RelaysChanged);
        delta.RelaysRemoved.AddRange(cut.RelaysRemoved);
        var empty = delta.PeersChanged.Count == 0 && delta.Presence.Count == 0 && delta.GrantsChanged.Count == 0 && delta.PeersRemoved.Count == 0 && delta.RelaysChanged.Count == 0 && delta.RelaysRemoved.Count == 0;
        return cut.Cuts[(grants, form)] = empty ? null : Handle(new SyncResponse { Delta = delta });
    }

    /// <summary>Without a policy every node sees every other (a cut's mode is the mode it was made in: a change of mode drops the kept cuts).</summary>
    private bool Sees(GrantKey grants, PeerView peer) => !PerNode || grants.Sees(peer.Grants);

    private void Add(PeerView view)
    {
        if (view.Key is not { } key) return;
        _peers[(long)view.Public.NodeId] = view;
        _idsByKey[key] = (long)view.Public.NodeId;
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

/// <summary>
/// A peer as the hub keeps it: the record peers get (without its filter), its own record with its filter as the bytes
/// its stream gets (kept serialized: a filter's objects were a third of a replica's heap), and its grants.
/// </summary>
internal sealed class PeerView
{
    /// <summary>A record as a delta or map brought it, the hub's own to change.</summary>
    public PeerView(Peer record)
        : this(record, record.NodeKey.Length == Key32.Size ? new PublicKey(record.NodeKey.Span) : null, new GrantKey([.. record.PolicySources], [.. record.PolicyTargets]), null)
    {
    }

    private PeerView(Peer record, PublicKey? key, GrantKey grants, SyncResponse? self)
    {
        Key = key;
        Grants = grants;
        Self = self;
        if (record.Filter is not null)
        {
            var bytes = new SyncResponse { Self = record }.ToByteArray();
            record.Filter = null;
            Self = new SyncResponse();
            ServiceDefinitions.Remember(Self, bytes);
        }
        Public = record;
    }

    public Peer Public { get; }

    /// <summary>
    /// The record as a compact map holds it, serialized once: without its grants (the map's grant sets hold them) and
    /// without allowed IPs that are its addresses.
    /// </summary>
    public byte[] CompactBytes => _compact ??= Compact(Public);

    private byte[]? _compact;

    private static byte[] Compact(Peer record)
    {
        var compact = record.Clone();
        compact.PolicySources.Clear();
        compact.PolicyTargets.Clear();
        if (compact.AllowedIps.SequenceEqual(compact.Addresses)) compact.AllowedIps.Clear();
        return compact.ToByteArray();
    }

    /// <summary>The same peer with a new presence: its key, grants and own record stand (an agent reads no presence of its own).</summary>
    public PeerView With(PeerPresence presence) => new(Mesh.Control.PeerRecords.WithPresence(Public, presence), Key, Grants, Self);

    public PublicKey? Key { get; }
    public GrantKey Grants { get; }

    /// <summary>The node's own record for its stream alone (with its filter, with a policy).</summary>
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

    /// <summary>The grants as a compact map or delta names them by index.</summary>
    public GrantSet ToGrantSet() => new() { Sources = { sources }, Targets = { targets } };

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

/// <summary>A peer a delta changed: as it was (null when new), as it is, and its presence when only that changed.</summary>
internal readonly record struct PeerChange(PeerView? Old, PeerView Current, PeerPresence? Presence);

/// <summary>What one delta changed, and its cut for each kind of node and form (made when a stream of that kind needs it).</summary>
internal sealed class DeltaCut(ulong serial)
{
    public ulong Serial { get; } = serial;
    public List<PeerChange> Changed { get; } = new();
    public Dictionary<long, PeerChange> ChangedById { get; } = new();
    public List<PeerView> Removed { get; } = new();
    public List<Relay> RelaysChanged { get; } = new();
    public List<string> RelaysRemoved { get; } = new();
    public Dictionary<(GrantKey, MapForm), SyncResponse?> Cuts { get; } = new();
}
