using System.Net;
using Mesh.Traversal.Relay;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Paths;

/// <summary>A bounce node as the mesh uses it: its session, where it listens, and its stream transport.</summary>
internal sealed class RelayLink(Protos.V1.Relay relay, RelayClient client, NetEndpoint? udp)
{
    public Protos.V1.Relay Relay { get; } = relay;
    public string Id => Relay.Id;
    public RelayClient Client { get; } = client;
    public NetEndpoint? Udp { get; } = udp;
}

/// <summary>
/// This node's sessions with the netmap's bounce nodes: which there are, which answer, how each is reached (UDP to
/// its address, or its stream link where UDP is blocked or it has none), the frames that keep each session, and
/// the framing of what goes through them. The path engine asks it which relay carries a peer; the bind looks up
/// the relay a frame came from. Changes happen under the engine's gate; the lookups read immutable snapshots.
/// </summary>
internal sealed class RelaySessions(PrivateKey key, IPathSockets sockets)
{
    [ThreadStatic] private static byte[]? t_frame;
    private readonly byte[] _control = new byte[256];
    private List<RelayLink> _relays = new();
    private volatile Dictionary<NetEndpoint, RelayLink> _byUdp = new();
    private volatile Dictionary<string, RelayLink> _byId = new();
    private volatile bool _udpBlocked;

    /// <summary>The relay listening at this UDP address: a frame from anywhere else is not a relay's. Lock-free.</summary>
    public bool TryByUdp(NetEndpoint from, out RelayLink link) => _byUdp.TryGetValue(from, out link!);

    /// <summary>The relay with this id. Lock-free.</summary>
    public bool TryById(string id, out RelayLink link) => _byId.TryGetValue(id, out link!);

    /// <summary>Takes the netmap's relays, keeping sessions with relays that did not change; a relay this node runs itself is skipped.</summary>
    public void Set(IEnumerable<Protos.V1.Relay> relays)
    {
        var fresh = new List<RelayLink>();
        foreach (var relay in relays)
        {
            if (relay.NodeKey.Length != 32 || relay.NodeKey.Span.SequenceEqual(key.PublicKey.Span)) continue;
            NetEndpoint? udp = IPEndPoint.TryParse(relay.UdpAddress, out var parsed) && parsed.Port != 0 ? new NetEndpoint(parsed) : null;
            var existing = _relays.Find(r => r.Id == relay.Id && r.Relay.Equals(relay));
            fresh.Add(existing ?? new RelayLink(relay, new RelayClient(relay.Id, new PublicKey(relay.NodeKey.Span), key), udp));
        }
        _relays = fresh;
        var byUdp = new Dictionary<NetEndpoint, RelayLink>();
        var byId = new Dictionary<string, RelayLink>();
        foreach (var link in fresh)
        {
            if (link.Udp is { } endpoint) byUdp[endpoint] = link;
            byId[link.Id] = link;
        }
        _byUdp = byUdp;
        _byId = byId;
    }

    /// <summary>Whether UDP is blocked here; a change starts every session again on its new transport.</summary>
    public void SetUdpBlocked(bool blocked)
    {
        if (blocked == _udpBlocked) return;
        _udpBlocked = blocked;
        Reset();
    }

    /// <summary>Forgets every session (this node's network changed), so the next tick logs in again.</summary>
    public void Reset()
    {
        foreach (var link in _relays) link.Client.Reset();
    }

    /// <summary>Sends a Hello to every relay whose session is due one.</summary>
    public void Tick(TimeSpan now)
    {
        foreach (var link in _relays)
        {
            if (OverStream(link) && link.Relay.TcpUrl.Length == 0) continue;
            var length = link.Client.Poll(now, _control);
            if (length > 0) Send(link, _control.AsSpan(0, length));
        }
    }

    /// <summary>Takes a relay's Challenge, Ready or Refused (answering a Challenge); true when the relay came alive or died with it.</summary>
    public bool OnControl(RelayLink link, ReadOnlySpan<byte> frame, TimeSpan now)
    {
        var wasAlive = link.Client.IsAlive(now);
        var length = link.Client.OnControl(frame, now, _control);
        if (length > 0) Send(link, _control.AsSpan(0, length));
        return wasAlive != link.Client.IsAlive(now);
    }

    /// <summary>Sends a payload for a peer through the relay (the engine's probes; the bind frames the data path's itself).</summary>
    public void Forward(RelayLink relay, bool overStream, ReadOnlySpan<byte> nodeKey, ReadOnlySpan<byte> payload)
    {
        var frame = Frame(nodeKey, payload, out var length);
        if (overStream) sockets.SendRelayStream(relay.Relay, frame.AsSpan(0, length));
        else if (relay.Udp is { } udp) sockets.SendUdp(0, frame.AsSpan(0, length), udp);
    }

    /// <summary>Writes a Send frame for the peer into the calling thread's buffer; returns the buffer.</summary>
    public static byte[] Frame(ReadOnlySpan<byte> nodeKey, ReadOnlySpan<byte> payload, out int length)
    {
        var buffer = t_frame ??= new byte[64 * 1024 + RelayFrame.ForwardOverhead];
        length = RelayFrame.WriteForward(buffer, RelayFrameType.Send, nodeKey, payload);
        return buffer;
    }

    public bool OverStream(RelayLink link) => _udpBlocked || link.Udp is null;

    /// <summary>The relay with this id while its Ready answers keep coming, else null.</summary>
    public RelayLink? Alive(string? id, TimeSpan now) => id is not null && _byId.TryGetValue(id, out var link) && link.Client.IsAlive(now) ? link : null;

    /// <summary>The relay this node listens on: the first one alive, in netmap order.</summary>
    public RelayLink? Home(TimeSpan now)
    {
        foreach (var link in _relays)
        {
            if (link.Client.IsAlive(now)) return link;
        }
        return null;
    }

    /// <summary>The relay a peer was last heard through, else the one it listens on, else ours: whichever is alive; else any.</summary>
    public RelayLink? For(string? lastHeard, string preferred, TimeSpan now) =>
        Alive(lastHeard, now) ?? Alive(preferred, now) ?? Home(now)
        ?? (_byId.TryGetValue(preferred, out var named) ? named : null)
        ?? (_relays.Count > 0 ? _relays[0] : null);

    /// <summary>Whether a relay answers over UDP: then UDP works here, whatever STUN's silence says.</summary>
    public bool AnswersOverUdp(TimeSpan now)
    {
        foreach (var link in _relays)
        {
            if (link.Udp is not null && !_udpBlocked && link.Client.IsAlive(now)) return true;
        }
        return false;
    }

    private void Send(RelayLink link, ReadOnlySpan<byte> frame)
    {
        if (OverStream(link)) sockets.SendRelayStream(link.Relay, frame);
        else sockets.SendUdp(0, frame, link.Udp!.Value);
    }
}
