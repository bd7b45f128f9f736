using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Mesh.WireGuard.Conn;
using Mesh.WireGuard.Core;

namespace Mesh.WireGuard.Tests;

/// <summary>
/// A hop limit given for one datagram applies to that datagram only: opening packets sent with TTL 3 while
/// WireGuard packets go out from another thread must leave every WireGuard packet at the default TTL.
/// </summary>
public sealed class UdpBindingTests
{
    private const int Each = 1500;

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public void AHopLimitForOneDatagramLeavesConcurrentSendsAtTheDefault(string receiverAddress)
    {
        var ipv4 = IPAddress.Parse(receiverAddress).AddressFamily == AddressFamily.InterNetwork;
        using var receiver = new Socket(ipv4 ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp);
        receiver.ReceiveBufferSize = 8 * 1024 * 1024;
        receiver.ReceiveTimeout = 2000;
        // IP_RECVTTL (SOL_IP 12) or IPV6_RECVHOPLIMIT (SOL_IPV6 51): each datagram comes with the TTL it arrived with.
        receiver.SetRawSocketOption(ipv4 ? 0 : 41, ipv4 ? 12 : 51, BitConverter.GetBytes(1));
        receiver.Bind(new IPEndPoint(IPAddress.Parse(receiverAddress), 0));
        var destination = new NetEndpoint((IPEndPoint)receiver.LocalEndPoint!);
        var defaultTtl = int.Parse(File.ReadAllText(ipv4 ? "/proc/sys/net/ipv4/ip_default_ttl" : "/proc/sys/net/ipv6/conf/lo/hop_limit").Trim());
        using var sender = UdpBinding.Bind(0);

        var plain = new Thread(() =>
        {
            for (var i = 0; i < Each; i++) sender.Send("wireguard"u8, destination);
        });
        var limited = new Thread(() =>
        {
            for (var i = 0; i < Each; i++) Assert.True(sender.Send("opening"u8, destination, ttl: 3));
        });
        plain.Start();
        limited.Start();
        var seen = new Dictionary<(string Kind, int Ttl), int>();
        while (Receive(receiver) is { } datagram)
        {
            seen[datagram] = seen.GetValueOrDefault(datagram) + 1;
            if (seen.Values.Sum() == 2 * Each) break;
        }
        plain.Join();
        limited.Join();

        Assert.Equal([("opening", 3), ("wireguard", defaultTtl)], seen.Keys.OrderBy(k => k.Kind));
        Assert.True(seen[("opening", 3)] > Each / 2 && seen[("wireguard", defaultTtl)] > Each / 2, $"most datagrams arrive: {string.Join(", ", seen)}");
    }

    [DllImport("libc", SetLastError = true)]
    private static extern nint recvmsg(int fd, ref SocketCalls.MessageHeader message, int flags);

    /// <summary>One datagram with the TTL (or hop limit) it arrived with, through IP_RECVTTL / IPV6_RECVHOPLIMIT; null on timeout.</summary>
    private static (string Kind, int Ttl)? Receive(Socket socket)
    {
        var buffer = GC.AllocateArray<byte>(16 + 64 + 2048, pinned: true);
        var origin = Marshal.UnsafeAddrOfPinnedArrayElement(buffer, 0);
        BinaryPrimitives.WriteInt64LittleEndian(buffer.AsSpan(0), origin + 80);
        BinaryPrimitives.WriteInt64LittleEndian(buffer.AsSpan(8), 2048);
        var header = new SocketCalls.MessageHeader { IoVectors = origin, IoVectorCount = 1, Control = origin + 16, ControlLength = 64 };
        var length = recvmsg((int)socket.SafeHandle.DangerousGetHandle(), ref header, 0);
        if (length < 0) return null;
        var control = buffer.AsSpan(16, (int)header.ControlLength);
        var ttl = -1;
        while (control.Length >= 16)
        {
            var cmsgLength = (int)BinaryPrimitives.ReadInt64LittleEndian(control);
            var type = BinaryPrimitives.ReadInt32LittleEndian(control[12..]);
            if (type is 2 or 52) ttl = BinaryPrimitives.ReadInt32LittleEndian(control[16..]);
            control = control[Math.Min(control.Length, (cmsgLength + 7) & ~7)..];
        }
        return (System.Text.Encoding.ASCII.GetString(buffer, 80, (int)length), ttl);
    }
}
