using System.Buffers;
using System.Collections.Concurrent;
using System.Net.WebSockets;
using Mesh.Control;
using Mesh.Traversal.Paths;
using Mesh.WireGuard.Conn;
using Mesh.WireGuard.Core;
using Microsoft.Extensions.Logging;

namespace Mesh.Traversal.Hosting;

/// <summary>
/// Every way a mesh node's datagrams leave and arrive besides the interface's socket itself: the hard-NAT
/// search's sockets and the TCP links to relays, over the <see cref="IUdpSockets"/> that also hold socket 0.
/// It is the path engine's sending side (<see cref="IPathSockets"/>). What arrives on the other sockets and
/// links is queued (at most <see cref="MaxQueued"/> datagrams, the rest dropped and counted) for the bind's
/// second receiver, so it reaches the device in batches like socket 0's. The queue copies each datagram once into
/// a pooled buffer: these paths carry a hard-NAT pair's or a UDP-blocked network's traffic, not the common case.
/// </summary>
public sealed class MeshLinks : IPathSockets, IDisposable
{
    public const int MaxQueued = 4096;

    private readonly IUdpSockets _udp;
    private readonly RelayStreamSet _streams;
    private readonly ConcurrentQueue<Waiting> _queue = new();
    private readonly ManualResetEventSlim _ready = new(false);
    private readonly Action? _arrived;
    private Waiting? _carried;
    private int _queued;
    private long _dropped;
    private volatile bool _disposed;

    /// <param name="udp">Socket 0 and the sockets the hard-NAT search opens (the links own them from now on).</param>
    /// <param name="coordinators">Where relays' relative stream URLs live.</param>
    /// <param name="connect">Opens a relay's WebSocket (the agent's HTTP connector, the lab's virtual TCP).</param>
    /// <param name="arrived">
    /// Called after something joined the queue, for a host that drains it at once instead of running a receiving
    /// thread (the NAT lab); null where a thread waits in <see cref="ReceiveQueued"/>.
    /// </param>
    public MeshLinks(IUdpSockets udp, CoordinatorTargets coordinators, Func<Uri, CancellationToken, ValueTask<(WebSocket Socket, string Transport)>> connect,
        ILogger logger, TimeProvider? time = null, bool synchronousSends = false, Action? arrived = null)
    {
        _udp = udp;
        _arrived = arrived;
        _streams = new RelayStreamSet(coordinators, connect, (relayId, frame) => Enqueue(-1, relayId, frame.Span, default), logger, time, synchronousSends);
    }

    public IUdpSockets Udp => _udp;

    /// <summary>The relay links opened so far, for `mesh-agent status`.</summary>
    public ICollection<RelayStreamLink> RelayStreams => _streams.Links;

    /// <summary>Datagrams waiting for <see cref="ReceiveQueued"/>.</summary>
    public int Queued => Volatile.Read(ref _queued);

    /// <summary>Datagrams dropped because the queue was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    public void SendUdp(int socket, ReadOnlySpan<byte> datagram, NetEndpoint to, int ttl = 0) => _udp.Send(socket, datagram, to, ttl, null);

    public void SendRelayStream(Protos.V1.Relay relay, ReadOnlySpan<byte> frame) => _streams.Send(relay, frame);

    public int OpenSocket() => _disposed ? -1 : _udp.Open(OnSocketDatagram);

    public void CloseSocket(int socket) => _udp.Close(socket);

    /// <summary>The host's network changed: relay links dial again rather than wait for keepalives to find them dead.</summary>
    public void Reconnect() => _streams.Reconnect();

    /// <summary>
    /// Waits up to <paramref name="timeoutMs"/> for queued datagrams and moves as many as fit into the batch, each
    /// with its socket or link. Returns the count, 0 on a timeout, -1 once disposed. One thread calls it.
    /// </summary>
    public int ReceiveQueued(ReceiveBatch batch, int timeoutMs)
    {
        batch.Clear();
        if (_disposed) return -1;
        _ready.Reset();
        if (_carried is null && _queue.IsEmpty && timeoutMs != 0) _ready.Wait(timeoutMs);
        while (_carried is { } next || _queue.TryDequeue(out next))
        {
            _carried = null;
            if (!batch.Append(next.Buffer.AsSpan(0, next.Length), next.From, next.Socket, next.Link))
            {
                // The batch is full: this one leads the next.
                _carried = next;
                break;
            }
            Interlocked.Decrement(ref _queued);
            ArrayPool<byte>.Shared.Return(next.Buffer);
        }
        return _disposed ? -1 : batch.Count;
    }

    /// <summary>Closes the sockets and links; what is still queued is left to the collector (only the receiver takes from the queue).</summary>
    public void Dispose()
    {
        _disposed = true;
        _streams.Dispose();
        _udp.Dispose();
        _ready.Set();
    }

    private void OnSocketDatagram(int socket, ReadOnlySpan<byte> datagram, NetEndpoint from) => Enqueue(socket, null, datagram, from);

    private void Enqueue(int socket, string? link, ReadOnlySpan<byte> datagram, NetEndpoint from)
    {
        if (_disposed) return;
        if (Interlocked.Increment(ref _queued) > MaxQueued)
        {
            Interlocked.Decrement(ref _queued);
            Interlocked.Increment(ref _dropped);
            return;
        }
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(datagram.Length, 1));
        datagram.CopyTo(buffer);
        _queue.Enqueue(new Waiting(buffer, datagram.Length, from, socket, link));
        _ready.Set();
        _arrived?.Invoke();
    }

    private readonly record struct Waiting(byte[] Buffer, int Length, NetEndpoint From, int Socket, string? Link);
}
