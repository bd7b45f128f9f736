using Google.Protobuf;
using Mesh.Protos.V1;

namespace Mesh.Control;

/// <summary>
/// An agent's copy of its netmap: a full map replaces everything, a delta with a newer serial changes or
/// removes peers. The entry with the agent's own key is itself. No I/O; not thread-safe.
/// </summary>
public sealed class NetMapView(ByteString selfKey)
{
    private readonly Dictionary<ulong, Peer> _peers = new();

    public ulong Serial { get; private set; }
    public Peer? Self { get; private set; }
    public IReadOnlyDictionary<ulong, Peer> Peers => _peers;
    public IReadOnlyList<Relay> Relays { get; private set; } = [];
    public IReadOnlyList<string> StunServers { get; private set; } = [];
    public int FullMapsReceived { get; private set; }
    public int DeltasApplied { get; private set; }

    /// <summary>Applies a full map or a delta; false for anything older than what is already applied.</summary>
    public bool Apply(SyncResponse message)
    {
        switch (message.KindCase)
        {
            case SyncResponse.KindOneofCase.Full:
                ApplyFull(message.Full);
                return true;
            case SyncResponse.KindOneofCase.Delta:
                return ApplyDelta(message.Delta);
            default:
                return false;
        }
    }

    public Peer? FindPeer(ByteString nodeKey) => _peers.Values.FirstOrDefault(p => p.NodeKey.Equals(nodeKey));

    private void ApplyFull(NetMap map)
    {
        _peers.Clear();
        Self = null;
        foreach (var peer in map.Peers)
        {
            if (peer.NodeKey.Equals(selfKey)) Self = peer;
            else _peers[peer.NodeId] = peer;
        }
        Relays = map.Relays.ToList();
        StunServers = map.StunServers.ToList();
        Serial = map.Serial;
        FullMapsReceived++;
    }

    private bool ApplyDelta(NetMapDelta delta)
    {
        if (delta.Serial <= Serial) return false;
        Serial = delta.Serial;
        foreach (var peer in delta.PeersChanged)
        {
            if (peer.NodeKey.Equals(selfKey)) Self = peer;
            else _peers[peer.NodeId] = peer;
        }
        foreach (var id in delta.PeersRemoved) _peers.Remove(id);
        if (delta.RelaysChanged.Count > 0 || delta.RelaysRemoved.Count > 0)
        {
            var relays = Relays.Where(r => !delta.RelaysRemoved.Contains(r.Id) && delta.RelaysChanged.All(c => c.Id != r.Id)).ToList();
            relays.AddRange(delta.RelaysChanged);
            Relays = relays;
        }
        DeltasApplied++;
        return true;
    }
}
