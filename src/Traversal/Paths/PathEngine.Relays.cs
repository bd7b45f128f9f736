using System.Net;
using Mesh.Traversal.Relay;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;
using Mesh.WireGuard.Noise;

namespace Mesh.Traversal.Paths;

/// <summary>A bounce node as the engine uses it: its session, where it listens, and its stream transport.</summary>
internal sealed class RelayLink(Protos.V1.Relay relay, RelayClient client, NetEndpoint? udp)
{
    public Protos.V1.Relay Relay { get; } = relay;
    public string Id => Relay.Id;
    public RelayClient Client { get; } = client;
    public NetEndpoint? Udp { get; } = udp;
}

/// <summary>Relays: sessions with every bounce node in the netmap, frames in and out, and which relay carries a peer.</summary>
public sealed partial class PathEngine
{
    private List<RelayLink> _relays = new();
    private volatile Dictionary<NetEndpoint, RelayLink> _relaysByUdp = new();
    private volatile Dictionary<string, RelayLink> _relaysById = new();

    /// <summary>The relay this node listens on (the first one alive, in netmap order); peers are told of it.</summary>
    public string? HomeRelay
    {
        get
        {
            lock (_gate) return Home(_clock.Now)?.Id;
        }
    }

    /// <summary>The relay with this id while its Ready answers keep coming, else null.</summary>
    public Protos.V1.Relay? AliveRelay(string id)
    {
        lock (_gate) return _relaysById.TryGetValue(id, out var link) && link.Client.IsAlive(_clock.Now) ? link.Relay : null;
    }

    /// <summary>Takes the netmap's relays, keeping sessions with relays that did not change; a relay this node runs itself is skipped.</summary>
    public void SetRelays(IEnumerable<Protos.V1.Relay> relays)
    {
        lock (_gate)
        {
            var fresh = new List<RelayLink>();
            foreach (var relay in relays)
            {
                if (relay.NodeKey.Length != 32 || relay.NodeKey.Span.SequenceEqual(_key.PublicKey.Span)) continue;
                NetEndpoint? udp = IPEndPoint.TryParse(relay.UdpAddress, out var parsed) && parsed.Port != 0 ? new NetEndpoint(parsed) : null;
                var existing = _relays.Find(r => r.Id == relay.Id && r.Relay.Equals(relay));
                fresh.Add(existing ?? new RelayLink(relay, new RelayClient(relay.Id, new PublicKey(relay.NodeKey.Span), _key), udp));
            }
            _relays = fresh;
            var byUdp = new Dictionary<NetEndpoint, RelayLink>();
            var byId = new Dictionary<string, RelayLink>();
            foreach (var link in fresh)
            {
                if (link.Udp is { } endpoint) byUdp[endpoint] = link;
                byId[link.Id] = link;
            }
            _relaysByUdp = byUdp;
            _relaysById = byId;
            var now = _clock.Now;
            foreach (var peer in _peers.Values) UpdateRoute(peer, now);
        }
    }

    private void TickRelays(TimeSpan now)
    {
        foreach (var link in _relays)
        {
            if (OverStream(link) && link.Relay.TcpUrl.Length == 0) continue;
            var length = link.Client.Poll(now, _scratch);
            if (length > 0) SendFrame(link, _scratch.AsSpan(0, length));
        }
    }

    private void OnRelayFrame(RelayLink link, ReadOnlySpan<byte> frame)
    {
        if (!RelayFrame.HasValidLength(frame))
        {
            Interlocked.Increment(ref _strayDatagrams);
            return;
        }
        if (RelayFrame.TypeOf(frame) != RelayFrameType.Receive)
        {
            lock (_gate)
            {
                var now = _clock.Now;
                var wasAlive = link.Client.IsAlive(now);
                var length = link.Client.OnControl(frame, now, _scratch);
                if (length > 0) SendFrame(link, _scratch.AsSpan(0, length));
                if (wasAlive != link.Client.IsAlive(now))
                {
                    foreach (var peer in _peers.Values)
                    {
                        UpdateRoute(peer, now);
                        Interlocked.Increment(ref peer.RouteGeneration);
                    }
                    PublishEndpointsIfChanged();
                }
            }
            return;
        }
        if (!_byId.TryGetValue(NodeKeyId.From(RelayFrame.NodeKey(frame)), out var sender))
        {
            Interlocked.Increment(ref _strayDatagrams);
            return;
        }
        var payload = RelayFrame.Payload(frame);
        if (MessageLayout.TypeOf(payload) != 0)
        {
            sender.LastRelayHeard = link.Id;
            _output.DeliverWireGuard(payload, sender.Synthetic);
            return;
        }
        lock (_gate) OnProbe(payload, -1, default, link, _clock.Now);
    }

    private void SendViaRelay(RelayLink relay, bool overStream, ReadOnlySpan<byte> nodeKey, ReadOnlySpan<byte> payload)
    {
        var buffer = t_relayBuffer ??= new byte[64 * 1024 + RelayFrame.ForwardOverhead];
        var length = RelayFrame.WriteForward(buffer, RelayFrameType.Send, nodeKey, payload);
        if (overStream) _output.SendRelayStream(relay.Id, buffer.AsSpan(0, length));
        else if (relay.Udp is { } udp) _output.SendUdp(0, buffer.AsSpan(0, length), udp);
    }

    private void SendFrame(RelayLink link, ReadOnlySpan<byte> frame)
    {
        if (OverStream(link)) _output.SendRelayStream(link.Id, frame);
        else _output.SendUdp(0, frame, link.Udp!.Value);
    }

    private bool OverStream(RelayLink link) => _udpBlocked || link.Udp is null;

    /// <summary>The relay the peer was last heard through, else the one it listens on, else ours: whichever is alive.</summary>
    private RelayLink? RelayFor(PeerPaths peer, TimeSpan now)
    {
        RelayLink? Alive(string? id) => id is not null && _relaysById.TryGetValue(id, out var link) && link.Client.IsAlive(now) ? link : null;
        return Alive(peer.LastRelayHeard) ?? Alive(peer.PreferredRelay) ?? Home(now)
            ?? (_relaysById.TryGetValue(peer.PreferredRelay, out var preferred) ? preferred : null)
            ?? (_relays.Count > 0 ? _relays[0] : null);
    }

    private RelayLink? Home(TimeSpan now)
    {
        foreach (var link in _relays)
        {
            if (link.Client.IsAlive(now)) return link;
        }
        return null;
    }
}
