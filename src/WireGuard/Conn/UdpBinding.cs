using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Mesh.WireGuard.Core;

namespace Mesh.WireGuard.Conn;

/// <summary>
/// One dual-stack UDP socket for everything the interface sends and receives. Addresses travel as
/// <see cref="SocketAddress"/> buffers reused per thread, so steady-state sends and receives allocate nothing.
/// </summary>
public sealed class UdpBinding : IDisposable
{
    private const int SOL_SOCKET = 1;
    private const int SO_MARK = 36;

    // One per family: a thread may send on both a dual-stack socket and an IPv4-only one.
    [ThreadStatic] private static SocketAddress? t_sendAddress6;
    [ThreadStatic] private static SocketAddress? t_sendAddress4;
    private readonly Socket _socket;

    private UdpBinding(Socket socket)
    {
        _socket = socket;
        Port = ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    public int Port { get; }

    /// <summary>Binds [::]:port (IPv4 and IPv6; 0 picks a free port), or only the given address when one is passed.</summary>
    public static UdpBinding Bind(int port, IPAddress? address = null)
    {
        address ??= IPAddress.IPv6Any;
        var socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            if (address.AddressFamily == AddressFamily.InterNetworkV6) socket.DualMode = true;
            socket.ReceiveBufferSize = 4 * 1024 * 1024;
            socket.SendBufferSize = 4 * 1024 * 1024;
            socket.Bind(new IPEndPoint(address, port));
            return new UdpBinding(socket);
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
    internal static NetEndpoint ToEndpoint(SocketAddress address)
    {
        var bytes = address.Buffer.Span;
        var port = BinaryPrimitives.ReadUInt16BigEndian(bytes[2..]);
        return address.Family == AddressFamily.InterNetworkV6
            ? NetEndpoint.FromAddressBytes(bytes.Slice(8, 16), port)
            : NetEndpoint.FromIPv4Bytes(bytes.Slice(4, 4), port);
    }

    private static void Fill(SocketAddress address, NetEndpoint destination)
    {
        var bytes = address.Buffer.Span;
        bytes[2..].Clear();
        BinaryPrimitives.WriteUInt16BigEndian(bytes[2..], destination.Port);
        if (address.Family == AddressFamily.InterNetworkV6)
        {
            destination.WriteMappedAddress(bytes.Slice(8, 16));
            address.Size = 28;
        }
        else
        {
            Span<byte> mapped = stackalloc byte[16];
            destination.WriteMappedAddress(mapped);
            mapped[12..].CopyTo(bytes.Slice(4, 4));
            address.Size = 16;
        }
    }
}
