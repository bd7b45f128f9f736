using System.Net.Sockets;
using Mesh.WireGuard.Core;

namespace Mesh.WireGuard.Conn;

/// <summary>
/// A plain interface's bind: one dual-stack UDP socket with recvmmsg/GRO and sendmmsg/GSO. Every datagram
/// received goes to the device as it is (the device tells WireGuard's messages from anything else).
/// </summary>
public sealed class UdpBind : IBind
{
    private readonly object _bindLock = new();
    private volatile UdpBinding _udp;
    private volatile bool _closed;
    private int _mark;

    /// <exception cref="SocketException">The port is taken.</exception>
    public UdpBind(int port)
    {
        _udp = UdpBinding.Bind(port, coalesceReceives: true);
    }

    public int Port => _udp.Port;
    public bool Segmentation => _udp.Segmentation;
    public bool ReceiveCoalescing => _udp.ReceiveCoalescing;
    public int Receivers => 1;

    /// <summary>
    /// Sends one datagram outside the data path's batches, with a hop limit for this datagram alone when
    /// <paramref name="ttl"/> is above 0; false when the network refused it.
    /// </summary>
    public bool SendOne(ReadOnlySpan<byte> datagram, NetEndpoint destination, int ttl = 0) => _udp.Send(datagram, destination, ttl);

    public int Receive(int receiver, ReceiveBatch batch, int timeoutMs)
    {
        var udp = _udp;
        var count = udp.Receive(batch, timeoutMs);
        // A socket closed by a rebind ends its receive; the next one waits on the new socket.
        return count < 0 && !_closed && udp != _udp ? 0 : count;
    }

    public void Send(ReadOnlySpan<byte> datagram, NetEndpoint destination, SendBatch? batch)
    {
        var udp = _udp;
        if (batch is not null)
        {
            if (batch.Add(datagram, destination, udp.Segmentation)) return;
            udp.Send(batch);
            if (batch.Add(datagram, destination, udp.Segmentation)) return;
        }
        udp.Send(datagram, destination);
    }

    public void Flush(SendBatch batch) => _udp.Send(batch);

    public bool Rebind(int port)
    {
        lock (_bindLock)
        {
            if (_closed) return false;
            if (port != 0 && port == _udp.Port) return true;
            UdpBinding fresh;
            try
            {
                fresh = UdpBinding.Bind(port, coalesceReceives: true);
            }
            catch (SocketException)
            {
                return false;
            }
            if (_mark != 0) fresh.SetFirewallMark(_mark);
            var old = _udp;
            _udp = fresh;
            old.Dispose();
            return true;
        }
    }

    public void SetFirewallMark(int mark)
    {
        lock (_bindLock)
        {
            _udp.SetFirewallMark(mark);
            _mark = mark;
        }
    }

    public void Dispose()
    {
        lock (_bindLock)
        {
            _closed = true;
            _udp.Dispose();
        }
    }
}
