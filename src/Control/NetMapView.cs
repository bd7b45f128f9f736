using Google.Protobuf;
using Mesh.Protos.V1;

namespace Mesh.Control;

/// <summary>
/// An agent's copy of its netmap: a full map replaces everything, a delta with a newer serial changes or
/// removes peers. Without a policy the entry with the agent's own key is itself; with one (<see cref="PerNode"/>) the
/// coordinator sends the agent's own record, with its packet filter, on its own, and entries with its key in a map
/// or delta are ignored (they lack the filter). In the compact form (<see cref="Form"/>) a map comes in parts, taken
/// whole with the last one, and a change of a peer's presence alone comes by its id. Each apply says what it changed
/// (<see cref="LastChange"/>), so a consumer touches only that. No I/O; not thread-safe.
/// </summary>
public sealed class NetMapView(ByteString selfKey)
{
    /// <summary>The most peers a map in parts may gather before it is whole: a coordinator that never ends one must not grow it without end.</summary>
    public const int MaxPeers = 1 << 20;

    /// <summary>The form this reader asks the coordinator for.</summary>
    public const MapForm Form = MapForm.Compact;

    private readonly Dictionary<ulong, Peer> _peers = new();
    private NetMap? _partial;

    public ulong Serial { get; private set; }
    public Peer? Self { get; private set; }
    public IReadOnlyDictionary<ulong, Peer> Peers => _peers;
    public IReadOnlyList<Relay> Relays { get; private set; } = [];
    public IReadOnlyList<string> StunServers { get; private set; } = [];

    /// <summary>The prefixes mesh addresses come from, as the last full map said.</summary>
    public IReadOnlyList<string> MeshPrefixes { get; private set; } = [];
    public int FullMapsReceived { get; private set; }
    public int DeltasApplied { get; private set; }

    /// <summary>A policy gives this node its own slice of the mesh: <see cref="Self"/> carries its filter.</summary>
    public bool PerNode { get; private set; }

    /// <summary>What the last successful <see cref="Apply"/> changed; reused, so valid until the next one.</summary>
    public NetMapChange LastChange { get; } = new();

    /// <summary>Applies a full map or a delta; false for anything older than what is already applied.</summary>
    public bool Apply(SyncResponse message)
    {
        switch (message.KindCase)
        {
            case SyncResponse.KindOneofCase.Full:
                return GatherParts(message.Full);
            case SyncResponse.KindOneofCase.Delta:
                // A coordinator never puts a delta inside a map: the stream that sent the parts gathered so far broke
                // off, and this one resumes from the last whole map.
                _partial = null;
                return ApplyDelta(message.Delta);
            case SyncResponse.KindOneofCase.Self:
                if (!message.Self.NodeKey.Equals(selfKey)) return false;
                LastChange.Reset(full: false).SelfChanged = true;
                Self = message.Self;
                return true;
            default:
                return false;
        }
    }

    public Peer? FindPeer(ByteString nodeKey) => _peers.Values.FirstOrDefault(p => p.NodeKey.Equals(nodeKey));

    /// <summary>
    /// A map or one of its parts: a map is applied once its last part is here. A part that does not follow the last
    /// one gathered (a stream that broke off mid-map) drops what was gathered; a first part starts again.
    /// </summary>
    private bool GatherParts(NetMap part)
    {
        if (part.Part == 0) _partial = part;
        else if (_partial is { } partial && partial.Serial == part.Serial && partial.Part + 1 == part.Part && partial.Peers.Count + part.Peers.Count <= MaxPeers)
        {
            partial.Peers.AddRange(part.Peers);
            partial.GrantSets.AddRange(part.GrantSets);
            partial.Part = part.Part;
            partial.Continued = part.Continued;
        }
        else
        {
            _partial = null;
            return false;
        }
        if (_partial.Continued) return false;
        var map = _partial;
        _partial = null;
        Expand(map);
        ApplyFull(map);
        return true;
    }

    /// <summary>A compact map's peers as whole records: their grants from the map's grant sets, their allowed IPs their addresses where left out.</summary>
    private static void Expand(NetMap map)
    {
        foreach (var peer in map.Peers)
        {
            if (peer.GrantSet > 0 && peer.GrantSet <= map.GrantSets.Count)
            {
                PeerRecords.SetGrants(peer, map.GrantSets[(int)peer.GrantSet - 1]);
                peer.GrantSet = 0;
            }
            if (peer.AllowedIps.Count == 0) peer.AllowedIps.AddRange(peer.Addresses);
        }
    }

    private void ApplyFull(NetMap map)
    {
        var change = LastChange.Reset(full: true);
        var before = new Dictionary<ulong, Peer>(_peers);
        _peers.Clear();
        // With a policy the record with the filter comes next, on its own: until then there is no filter to go by.
        if (PerNode != map.PerNode || !map.PerNode) Self = null;
        PerNode = map.PerNode;
        foreach (var peer in map.Peers)
        {
            if (peer.NodeKey.Equals(selfKey))
            {
                if (!PerNode) Self = peer;
            }
            else
            {
                _peers[peer.NodeId] = peer;
                change.Upserted.Add(peer);
                before.Remove(peer.NodeId);
            }
        }
        change.Removed.AddRange(before.Values);
        Relays = map.Relays.ToList();
        StunServers = map.StunServers.ToList();
        MeshPrefixes = map.MeshPrefixes.ToList();
        Serial = map.Serial;
        FullMapsReceived++;
    }

    private bool ApplyDelta(NetMapDelta delta)
    {
        if (delta.Serial <= Serial) return false;
        var change = LastChange.Reset(full: false);
        Serial = delta.Serial;
        foreach (var peer in delta.PeersChanged)
        {
            if (peer.NodeKey.Equals(selfKey))
            {
                if (!PerNode) Self = peer;
            }
            else
            {
                _peers[peer.NodeId] = peer;
                change.Upserted.Add(peer);
            }
        }
        foreach (var presence in delta.Presence)
        {
            if (!_peers.TryGetValue(presence.NodeId, out var known)) continue;
            var peer = PeerRecords.WithPresence(known, presence);
            _peers[presence.NodeId] = peer;
            change.Upserted.Add(peer);
        }
        foreach (var regranted in delta.GrantsChanged)
        {
            if (!_peers.TryGetValue(regranted.NodeId, out var known) || regranted.GrantSet == 0 || regranted.GrantSet > delta.GrantSets.Count) continue;
            var peer = known.Clone();
            PeerRecords.SetGrants(peer, delta.GrantSets[(int)regranted.GrantSet - 1]);
            _peers[regranted.NodeId] = peer;
            change.Upserted.Add(peer);
        }
        foreach (var id in delta.PeersRemoved)
        {
            if (_peers.Remove(id, out var removed)) change.Removed.Add(removed);
        }
        if (delta.RelaysChanged.Count > 0 || delta.RelaysRemoved.Count > 0)
        {
            change.RelaysChanged = true;
            var relays = Relays.Where(r => !delta.RelaysRemoved.Contains(r.Id) && delta.RelaysChanged.All(c => c.Id != r.Id)).ToList();
            relays.AddRange(delta.RelaysChanged);
            Relays = relays;
        }
        DeltasApplied++;
        return true;
    }
}

/// <summary>What one netmap message changed: the peers added or changed, the peers removed, and whether the relays changed (a full map changes everything).</summary>
public sealed class NetMapChange
{
    public bool Full { get; private set; }
    public bool RelaysChanged { get; set; }

    /// <summary>The node's own record changed (with a policy: its filter).</summary>
    public bool SelfChanged { get; set; }
    public List<Peer> Upserted { get; } = new();
    public List<Peer> Removed { get; } = new();

    internal NetMapChange Reset(bool full)
    {
        Full = full;
        RelaysChanged = full;
        SelfChanged = full;
        Upserted.Clear();
        Removed.Clear();
        return this;
    }
}
