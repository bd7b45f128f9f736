using Mesh.WireGuard.Core;

namespace Mesh.Traversal.Paths;

/// <summary>Relays as the engine uses them: which carries each peer, and what their sessions and frames tell it.</summary>
public sealed partial class PathEngine
{
    /// <summary>The relay this node listens on (the first one alive, in netmap order); peers are told of it.</summary>
    public string? HomeRelay
    {
        get
        {
            lock (_gate) return _relays.Home(_clock.Now)?.Id;
        }
    }

    /// <summary>The relay with this id while its Ready answers keep coming, else null.</summary>
    public Protos.V1.Relay? AliveRelay(string id)
    {
        lock (_gate) return _relays.Alive(id, _clock.Now)?.Relay;
    }

    /// <summary>Takes the netmap's relays, keeping sessions with relays that did not change; a relay this node runs itself is skipped.</summary>
    public void SetRelays(IEnumerable<Protos.V1.Relay> relays)
    {
        lock (_gate)
        {
            _relays.Set(relays);
            var now = _clock.Now;
            foreach (var peer in _peers.Values) UpdateRoute(peer, now);
        }
    }

    /// <summary>A relay's Challenge, Ready or Refused: a relay that comes alive or dies moves every peer's route.</summary>
    internal void OnRelayControl(RelayLink link, ReadOnlySpan<byte> frame)
    {
        lock (_gate)
        {
            var now = _clock.Now;
            if (!_relays.OnControl(link, frame, now)) return;
            foreach (var peer in _peers.Values)
            {
                UpdateRoute(peer, now);
                Interlocked.Increment(ref peer.RouteGeneration);
            }
            PublishEndpointsIfChanged();
        }
    }

    /// <summary>
    /// A WireGuard datagram came from the peer with this key through the relay: the relay is remembered as the
    /// way back (a single reference write, without the gate). Returns the peer's synthetic endpoint, the source
    /// the device credits it to, or null for a node not in the map.
    /// </summary>
    internal NetEndpoint? RelayedFrom(RelayLink link, ReadOnlySpan<byte> nodeKey)
    {
        if (!_byId.TryGetValue(NodeKeyId.From(nodeKey), out var sender)) return null;
        sender.LastRelayHeard = link.Id;
        return sender.Synthetic;
    }

    /// <summary>A probe that came through a relay.</summary>
    internal void OnRelayedProbe(RelayLink link, ReadOnlySpan<byte> probe)
    {
        lock (_gate) OnProbe(probe, -1, default, link, _clock.Now);
    }

    private bool OverStream(RelayLink link) => _relays.OverStream(link);

    private RelayLink? RelayFor(PeerPaths peer, TimeSpan now) => _relays.For(peer.LastRelayHeard, peer.PreferredRelay, now);

    private void SendViaRelay(RelayLink relay, bool overStream, ReadOnlySpan<byte> nodeKey, ReadOnlySpan<byte> payload) =>
        _relays.Forward(relay, overStream, nodeKey, payload);
}
