using System.Collections.Concurrent;
using System.Net.Sockets;
using Mesh.Traversal.Hosting;
using Mesh.WireGuard.Conn;
using Mesh.WireGuard.Core;

namespace Mesh.Agent.Daemon;

/// <summary>
/// The agent's UDP sockets under its mesh bind: socket 0 (recvmmsg with GRO, sendmmsg with GSO, moved by a
/// rebind) and the hard-NAT search's sockets, each read without a thread of its own (a search holds up to 256)
/// into one reused buffer, and sending with a hop limit per datagram as a control message.
/// </summary>
public sealed class KernelUdpSockets : IUdpSockets
{
    private readonly UdpBind _main;
    private readonly ConcurrentDictionary<int, UdpBinding> _others = new();
    private readonly CancellationTokenSource _stopping = new();
    private int _nextSocket;
    private int _mark;
    private volatile bool _disposed;

    /// <exception cref="SocketException">The port is taken.</exception>
    public KernelUdpSockets(int port)
    {
        _main = new UdpBind(port);
    }

    public int Port => _main.Port;
    public bool Segmentation => _main.Segmentation;
    public bool ReceiveCoalescing => _main.ReceiveCoalescing;

    public int Receive(ReceiveBatch batch, int timeoutMs) => _main.Receive(0, batch, timeoutMs);

    public void Send(int socket, ReadOnlySpan<byte> datagram, NetEndpoint to, int ttl, SendBatch? batch)
    {
        if (socket == 0)
        {
            if (ttl > 0) _main.SendOne(datagram, to, ttl);
            else _main.Send(datagram, to, batch);
        }
        else if (_others.TryGetValue(socket, out var other))
        {
            other.Send(datagram, to, ttl);
        }
    }

    public void Flush(SendBatch batch) => _main.Flush(batch);

    public int Open(DatagramReceived received)
    {
        if (_disposed) return -1;
        UdpBinding socket;
        try
        {
            socket = UdpBinding.Bind(0);
        }
        catch (SocketException)
        {
            return -1;
        }
        try
        {
            if (Volatile.Read(ref _mark) is var mark and not 0) socket.SetFirewallMark(mark);
        }
        catch (SocketException)
        {
            socket.Dispose();
            return -1;
        }
        var id = Interlocked.Increment(ref _nextSocket);
        _others[id] = socket;
        if (_disposed)
        {
            Close(id);
            return -1;
        }
        _ = ReadAsync(id, socket, received);
        return id;
    }

    public void Close(int socket)
    {
        if (_others.TryRemove(socket, out var closed)) closed.Dispose();
    }

    public bool Rebind(int port) => _main.Rebind(port);

    public void SetFirewallMark(int mark)
    {
        Volatile.Write(ref _mark, mark);
        _main.SetFirewallMark(mark);
    }

    public void Dispose()
    {
        _disposed = true;
        _stopping.Cancel();
        foreach (var socket in _others.Values) socket.Dispose();
        _others.Clear();
        _main.Dispose();
    }

    private async Task ReadAsync(int id, UdpBinding socket, DatagramReceived received)
    {
        var buffer = new byte[64 * 1024];
        var from = socket.CreateReceiveAddress();
        while (true)
        {
            var (length, source) = await socket.ReceiveAsync(buffer, from, _stopping.Token).ConfigureAwait(false);
            if (length < 0) return;
            if (length > 0) received(id, buffer.AsSpan(0, length), source);
        }
    }
}
