using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Mesh.WireGuard.Conn;

/// <summary>
/// sendmsg(2) with an IP_TTL or IPV6_HOPLIMIT control message: a hop limit for one datagram, where a socket
/// option would apply to every send made meanwhile by other threads. .NET offers no ancillary data on send,
/// hence libc. The message, its address and control data are laid out in a pinned buffer per thread; these
/// sends are rare (opening packets), so the copy does not matter.
/// </summary>
internal static class SendWithHopLimit
{
    private const int IoVecOffset = 0;
    private const int ControlOffset = 16;
    private const int NameOffset = 40;
    private const int DataOffset = 72;

    [ThreadStatic] private static byte[]? t_scratch;

    /// <summary>Sends to the address (a filled sockaddr) with this hop limit; false when the kernel refused it.</summary>
    public static bool Send(Socket socket, ReadOnlySpan<byte> datagram, SocketAddress address, bool ipv4, int hopLimit)
    {
        if (datagram.Length > ushort.MaxValue) return false;
        var scratch = t_scratch ??= GC.AllocateArray<byte>(DataOffset + ushort.MaxValue, pinned: true);
        var origin = Marshal.UnsafeAddrOfPinnedArrayElement(scratch, 0);
        var span = scratch.AsSpan();
        BinaryPrimitives.WriteInt64LittleEndian(span[IoVecOffset..], origin + DataOffset);
        BinaryPrimitives.WriteInt64LittleEndian(span[(IoVecOffset + 8)..], datagram.Length);
        Span<byte> limit = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(limit, hopLimit);
        var controlSpace = SocketCalls.WriteControl(span[ControlOffset..], ipv4 ? SocketCalls.SOL_IP : SocketCalls.SOL_IPV6, ipv4 ? SocketCalls.IP_TTL : SocketCalls.IPV6_HOPLIMIT, limit);
        address.Buffer.Span[..address.Size].CopyTo(span[NameOffset..]);
        datagram.CopyTo(span[DataOffset..]);
        var header = new SocketCalls.MessageHeader
        {
            Name = origin + NameOffset,
            NameLength = (uint)address.Size,
            IoVectors = origin + IoVecOffset,
            IoVectorCount = 1,
            Control = origin + ControlOffset,
            ControlLength = (nuint)controlSpace,
        };
        using var lease = new SocketCalls.Lease(socket);
        return lease.Fd >= 0 && SocketCalls.sendmsg(lease.Fd, ref header, 0) >= 0;
    }
}
