using Mesh.Traversal.Paths;
using Mesh.Traversal.Relay;
using Mesh.WireGuard.Conn;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Host;
using Mesh.WireGuard.Noise;

namespace Mesh.Traversal.Hosting;

/// <summary>
/// A mesh node's bind, in the shape of magicsock's Conn: the one place that tells what arrived and decides where
/// the device's datagrams go. It reads socket 0 (receiver 0) and the queue of the other sockets and relay links
/// (receiver 1, <see cref="MeshLinks"/>), and sorts every datagram once: WireGuard stays in the batch for the
/// device; a relay's frame from a relay in the map is unwrapped in place to the WireGuard datagram it carries
/// (credited to the sender's synthetic endpoint), or is a session frame or probe for the engine; STUN, probes and
/// port-mapping answers go to the <see cref="PathEngine"/>. A datagram the device sends to a peer's synthetic
/// endpoint goes where the engine's route says (the direct path, a relay over UDP or its link, or both while a
/// direct path is unconfirmed), in the sending thread's batch when it is on socket 0. The engine never sees the
/// data's bytes or the relay framing. Locks: the engine's gate for what is not WireGuard, and the relay link set's
/// when a relay's first frame opens its link; neither is held while the other is taken.
/// </summary>
public sealed class MeshBind(MeshLinks links, PathEngine engine, IoFailures failures) : IBind
{
    private long _stray;

    public int Port => links.Udp.Port;
    public bool Segmentation => links.Udp.Segmentation;
    public bool ReceiveCoalescing => links.Udp.ReceiveCoalescing;

    /// <summary>Socket 0, and the queue of the other sockets and the relay links.</summary>
    public int Receivers => 2;

    /// <summary>Relay frames from no relay of the map, from no peer of the map, or malformed; and datagrams a relay link carried that were no relay frame.</summary>
    public long StrayDatagrams => Interlocked.Read(ref _stray);

    public int Receive(int receiver, ReceiveBatch batch, int timeoutMs)
    {
        var count = receiver == 0 ? links.Udp.Receive(batch, timeoutMs) : links.ReceiveQueued(batch, timeoutMs);
        return count <= 0 ? count : Sort(batch);
    }

    public void Send(ReadOnlySpan<byte> datagram, NetEndpoint destination, SendBatch? batch)
    {
        if (!engine.TryRoute(destination, out var route))
        {
            links.Udp.Send(0, datagram, destination, 0, batch);
            return;
        }
        if (route.Direct is { } direct) links.Udp.Send(direct.Socket, datagram, direct.Remote, 0, batch);
        if (route.Relay is not { } relay) return;
        var frame = RelaySessions.Frame(route.Peer.Span, datagram, out var length);
        if (route.RelayOverStream) links.SendRelayStream(relay.Relay, frame.AsSpan(0, length));
        else if (relay.Udp is { } udp) links.Udp.Send(0, frame.AsSpan(0, length), udp, 0, batch);
    }

    public void Flush(SendBatch batch) => links.Udp.Flush(batch);

    public bool Rebind(int port) => links.Udp.Rebind(port);

    public void SetFirewallMark(int mark) => links.Udp.SetFirewallMark(mark);

    public void Dispose() => links.Dispose();

    /// <summary>Keeps the batch's WireGuard datagrams (relayed ones unwrapped) at its front and hands the rest on; returns how many stay.</summary>
    private int Sort(ReceiveBatch batch)
    {
        var kept = 0;
        for (var i = 0; i < batch.Count; i++)
        {
            try
            {
                if (Keep(batch, i, kept)) kept++;
            }
            catch (Exception ex)
            {
                failures.Record(IoThread.Udp, ex);
            }
        }
        batch.Truncate(kept);
        return kept;
    }

    private bool Keep(ReceiveBatch batch, int index, int kept)
    {
        var datagram = batch.Datagram(index);
        var link = batch.Link(index);
        if (link is null && MessageLayout.TypeOf(datagram) != 0)
        {
            batch.Keep(index, kept, 0, datagram.Length, batch.Source(index));
            return true;
        }
        if (!RelayFrame.LooksLikeRelay(datagram))
        {
            if (link is null) engine.OnDatagram(batch.Socket(index), datagram, batch.Source(index));
            else Interlocked.Increment(ref _stray);
            return false;
        }
        RelayLink? relay;
        if (link is not null) engine.Relays.TryById(link, out relay);
        else engine.Relays.TryByUdp(batch.Source(index), out relay);
        if (relay is null || !RelayFrame.HasValidLength(datagram))
        {
            Interlocked.Increment(ref _stray);
            return false;
        }
        if (RelayFrame.TypeOf(datagram) != RelayFrameType.Receive)
        {
            engine.OnRelayControl(relay, datagram);
            return false;
        }
        var payload = RelayFrame.Payload(datagram);
        if (MessageLayout.TypeOf(payload) == 0)
        {
            engine.OnRelayedProbe(relay, payload);
            return false;
        }
        if (engine.RelayedFrom(relay, RelayFrame.NodeKey(datagram)) is not { } sender)
        {
            Interlocked.Increment(ref _stray);
            return false;
        }
        batch.Keep(index, kept, RelayFrame.ForwardOverhead, payload.Length, sender);
        return true;
    }
}
