using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Mesh.WireGuard.Core;

namespace Mesh.WireGuard.Conn;

/// <summary>
/// One dual-stack UDP socket for everything the interface sends and receives. Addresses travel as
/// <see cref="SocketAddress"/> buffers reused per thread, so steady-state sends and receives allocate nothing.
/// The data path moves batches: recvmmsg with UDP GRO, sendmmsg with UDP GSO, each where the kernel has it.
/// </summary>
public sealed class UdpBinding : IDisposable
{
    private const int SOL_SOCKET = 1;
    private const int SO_MARK = 36;
    private const ushort AfInet = 2;
    private const ushort AfInet6 = 10;
    private const int EMSGSIZE = 90;
    private const int ENETUNREACH = 101;
    private const int ECONNREFUSED = 111;
    private const int EHOSTUNREACH = 113;

    // One per family: a thread may send on both a dual-stack socket and an IPv4-only one.
    [ThreadStatic] private static SocketAddress? t_sendAddress6;
    [ThreadStatic] private static SocketAddress? t_sendAddress4;
    private readonly Socket _socket;

    private volatile bool _segmentation;

    private UdpBinding(Socket socket, bool coalesceReceives)
    {
        _socket = socket;
        Port = ((IPEndPoint)socket.LocalEndPoint!).Port;
        _segmentation = TryGetOption(SocketCalls.SOL_UDP, SocketCalls.UDP_SEGMENT);
        ReceiveCoalescing = coalesceReceives && TrySetOption(SocketCalls.SOL_UDP, SocketCalls.UDP_GRO, 1);
    }

    public int Port { get; }

    /// <summary>UDP GSO: one send hands the kernel many datagrams of one size to one destination. Off once the kernel refuses it.</summary>
    public bool Segmentation => _segmentation;

    /// <summary>UDP GRO: one receive takes several datagrams of one sender.</summary>
    public bool ReceiveCoalescing { get; }

    /// <summary>
    /// Binds [::]:port (IPv4 and IPv6; 0 picks a free port), or only the given address when one is passed.
    /// <paramref name="coalesceReceives"/> turns on UDP GRO: then only <see cref="Receive(ReceiveBatch, int)"/> may
    /// receive, as a plain receive would get several datagrams glued together with no way to tell them apart.
    /// </summary>
    public static UdpBinding Bind(int port, IPAddress? address = null, bool coalesceReceives = false)
    {
        address ??= IPAddress.IPv6Any;
        var socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            if (address.AddressFamily == AddressFamily.InterNetworkV6) socket.DualMode = true;
            socket.ReceiveBufferSize = 4 * 1024 * 1024;
            socket.SendBufferSize = 4 * 1024 * 1024;
            socket.Bind(new IPEndPoint(address, port));
            return new UdpBinding(socket, coalesceReceives);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>SO_MARK on outgoing packets, so policy routing can keep tunnel traffic out of the tunnel.</summary>
    public void SetFirewallMark(int mark)
    {
        Span<byte> value = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(value, mark);
        _socket.SetRawSocketOption(SOL_SOCKET, SO_MARK, value);
    }

    /// <summary>Blocks until a datagram arrives; returns its length, or -1 once the socket is closed.</summary>
    public int Receive(Span<byte> buffer, SocketAddress from, out NetEndpoint source)
    {
        source = default;
        try
        {
            var length = _socket.ReceiveFrom(buffer, SocketFlags.None, from);
            source = ToEndpoint(from);
            return length;
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.MessageSize or SocketError.NetworkUnreachable or SocketError.HostUnreachable)
        {
            // ICMP errors for earlier sends surface on receive; they are not fatal.
            return 0;
        }
        catch (Exception ex) when (ex is ObjectDisposedException or SocketException)
        {
            return -1;
        }
    }

    /// <summary>
    /// Waits for one datagram without a thread of its own; returns its length (0 for an ICMP error of an earlier
    /// send) and source, or -1 once the socket is closed. <paramref name="from"/> is reused from call to call.
    /// </summary>
    public async ValueTask<(int Length, NetEndpoint Source)> ReceiveAsync(Memory<byte> buffer, SocketAddress from, CancellationToken cancellationToken)
    {
        try
        {
            var length = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, from, cancellationToken).ConfigureAwait(false);
            return (length, ToEndpoint(from));
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.MessageSize or SocketError.NetworkUnreachable or SocketError.HostUnreachable)
        {
            return (0, default);
        }
        catch (Exception ex) when (ex is ObjectDisposedException or SocketException or OperationCanceledException)
        {
            return (-1, default);
        }
    }

    /// <summary>
    /// Waits up to <paramref name="timeoutMs"/> for datagrams and takes all that are there (recvmmsg). Returns
    /// how many the batch holds: 0 on a timeout or an ICMP error for an earlier send, -1 once the socket is closed.
    /// </summary>
    public int Receive(ReceiveBatch batch, int timeoutMs)
    {
        using var lease = new SocketCalls.Lease(_socket);
        if (lease.Fd < 0) return -1;
        var poll = new Tun.Libc.PollFd { Fd = lease.Fd, Events = Tun.Libc.POLLIN };
        var ready = Tun.Libc.poll(ref poll, 1, timeoutMs);
        if (ready < 0) return Marshal.GetLastPInvokeError() == SocketCalls.EINTR ? 0 : -1;
        ref var first = ref batch.Prepare();
        if (ready == 0) return 0;
        var received = SocketCalls.recvmmsg(lease.Fd, ref first, ReceiveBatch.Messages, SocketCalls.MSG_DONTWAIT, 0);
        if (received < 0) return IsTransient(Marshal.GetLastPInvokeError()) ? 0 : -1;
        batch.Complete(received);
        return batch.Count;
    }

    /// <summary>Sends every datagram of the batch (sendmmsg) and clears it. A datagram the network refuses is skipped.</summary>
    public void Send(SendBatch batch)
    {
        using var lease = new SocketCalls.Lease(_socket);
        var ipv6 = _socket.AddressFamily == AddressFamily.InterNetworkV6;
        var index = 0;
        while (lease.Fd >= 0 && index < batch.Count)
        {
            var sent = SocketCalls.sendmmsg(lease.Fd, ref batch.Prepare(index, ipv6), (uint)(batch.Count - index), 0);
            if (sent > 0)
            {
                index += sent;
                continue;
            }
            var errno = Marshal.GetLastPInvokeError();
            if (errno == SocketCalls.EINTR) continue;
            if (batch.IsSegmented(index) && errno is SocketCalls.EIO or SocketCalls.EINVAL or EMSGSIZE)
            {
                // EIO: the route's device cannot segment (no checksum offload), so GSO goes off for good. EINVAL or
                // EMSGSIZE: these segments do not fit the route's MTU unfragmented (relay frames are larger than
                // WireGuard's own datagrams); they go one by one and the kernel fragments them.
                if (errno == SocketCalls.EIO) _segmentation = false;
                for (var segment = 0; segment < batch.SegmentCount(index); segment++) Send(batch.Segment(index, segment), batch.Destination(index));
            }
            index++;
        }
        batch.Clear();
    }

    public SocketAddress CreateReceiveAddress() => new(_socket.AddressFamily);

    /// <summary>
    /// Sends with a hop limit (IP TTL, or the IPv6 hop limit) for this one datagram, in the datagram's own control
    /// message: other sends meanwhile keep the default.
    /// </summary>
    public bool Send(ReadOnlySpan<byte> datagram, NetEndpoint destination, int ttl)
    {
        if (ttl <= 0) return Send(datagram, destination);
        return SendWithHopLimit.Send(_socket, datagram, SendAddress(destination), destination.IsIPv4, Math.Min(ttl, 255));
    }

    /// <summary>Sends one datagram; false when the network refused it (no route, a closed socket).</summary>
    public bool Send(ReadOnlySpan<byte> datagram, NetEndpoint destination)
    {
        var address = SendAddress(destination);
        try
        {
            _socket.SendTo(datagram, SocketFlags.None, address);
            return true;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    public void Dispose() => _socket.Dispose();

    private SocketAddress SendAddress(NetEndpoint destination)
    {
        var address = _socket.AddressFamily == AddressFamily.InterNetworkV6
            ? t_sendAddress6 ??= new SocketAddress(AddressFamily.InterNetworkV6)
            : t_sendAddress4 ??= new SocketAddress(AddressFamily.InterNetwork);
        Fill(address, destination);
        return address;
    }

    /// <summary>Reads an AF_INET6 (or AF_INET) sockaddr; IPv4 arrives as IPv4-mapped IPv6 on a dual-stack socket.</summary>
    internal static NetEndpoint ToEndpoint(SocketAddress address) => ToEndpoint(address.Buffer.Span[..address.Size]);

    internal static NetEndpoint ToEndpoint(ReadOnlySpan<byte> sockaddr)
    {
        var port = BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..]);
        return BinaryPrimitives.ReadUInt16LittleEndian(sockaddr) == AfInet6 && sockaddr.Length >= 24
            ? NetEndpoint.FromAddressBytes(sockaddr.Slice(8, 16), port)
            : NetEndpoint.FromIPv4Bytes(sockaddr.Slice(4, 4), port);
    }

    /// <summary>Writes the destination as the sockaddr this socket's family takes; returns its length.</summary>
    internal static int WriteAddress(Span<byte> sockaddr, NetEndpoint destination, bool ipv6Socket)
    {
        sockaddr[..(ipv6Socket ? 28 : 16)].Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(sockaddr, ipv6Socket ? AfInet6 : AfInet);
        BinaryPrimitives.WriteUInt16BigEndian(sockaddr[2..], destination.Port);
        if (ipv6Socket)
        {
            destination.WriteMappedAddress(sockaddr.Slice(8, 16));
            return 28;
        }
        Span<byte> mapped = stackalloc byte[16];
        destination.WriteMappedAddress(mapped);
        mapped[12..].CopyTo(sockaddr.Slice(4, 4));
        return 16;
    }

    private static void Fill(SocketAddress address, NetEndpoint destination) =>
        address.Size = WriteAddress(address.Buffer.Span, destination, address.Family == AddressFamily.InterNetworkV6);

    private static bool IsTransient(int errno) => errno is SocketCalls.EINTR or SocketCalls.EAGAIN or ECONNREFUSED or EHOSTUNREACH or ENETUNREACH or EMSGSIZE;

    private bool TrySetOption(int level, int name, int value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, value);
        try
        {
            _socket.SetRawSocketOption(level, name, bytes);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private bool TryGetOption(int level, int name)
    {
        Span<byte> bytes = stackalloc byte[4];
        try
        {
            _socket.GetRawSocketOption(level, name, bytes);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
