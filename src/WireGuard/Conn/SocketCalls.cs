using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Mesh.WireGuard.Conn;

/// <summary>
/// The socket calls .NET does not offer: sendmsg with control messages, recvmmsg/sendmmsg, and the UDP
/// offload options. Structures are the 64-bit Linux layouts.
/// </summary>
internal static class SocketCalls
{
    public const int SOL_IP = 0;
    public const int IP_TTL = 2;
    public const int SOL_IPV6 = 41;
    public const int IPV6_HOPLIMIT = 52;
    public const int SOL_UDP = 17;
    public const int UDP_SEGMENT = 103;
    public const int UDP_GRO = 104;
    public const int MSG_DONTWAIT = 0x40;
    public const int EINTR = Tun.Libc.EINTR;
    public const int EAGAIN = Tun.Libc.EAGAIN;
    public const int EIO = 5;
    public const int EINVAL = 22;

    /// <summary>Where a control message's data starts, and the space one with <paramref name="dataLength"/> bytes takes (CMSG_SPACE).</summary>
    public const int ControlHeaderSize = 16;
    public static int ControlSpace(int dataLength) => ControlHeaderSize + ((dataLength + 7) & ~7);

    /// <summary>struct msghdr.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct MessageHeader
    {
        public nint Name;
        public uint NameLength;
        public nint IoVectors;
        public nuint IoVectorCount;
        public nint Control;
        public nuint ControlLength;
        public int Flags;
    }

    /// <summary>struct mmsghdr: a message and, on return, how many bytes it carried.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct MultiMessage
    {
        public MessageHeader Header;
        public uint Length;
    }

    /// <summary>struct iovec.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct IoVector
    {
        public nint Base;
        public nint Length;
    }

    [DllImport("libc", SetLastError = true)]
    public static extern nint sendmsg(int fd, ref MessageHeader message, int flags);

    [DllImport("libc", SetLastError = true)]
    public static extern int sendmmsg(int fd, ref MultiMessage messages, uint count, int flags);

    [DllImport("libc", SetLastError = true)]
    public static extern int recvmmsg(int fd, ref MultiMessage messages, uint count, int flags, nint timeout);

    /// <summary>Writes one control message at the start of <paramref name="control"/>; returns the space it took.</summary>
    public static int WriteControl(Span<byte> control, int level, int type, ReadOnlySpan<byte> data)
    {
        BinaryPrimitives.WriteInt64LittleEndian(control, ControlHeaderSize + data.Length);
        BinaryPrimitives.WriteInt32LittleEndian(control[8..], level);
        BinaryPrimitives.WriteInt32LittleEndian(control[12..], type);
        data.CopyTo(control[ControlHeaderSize..]);
        return ControlSpace(data.Length);
    }

    /// <summary>The data of the first control message of this level and type, or empty.</summary>
    public static ReadOnlySpan<byte> FindControl(ReadOnlySpan<byte> control, int level, int type)
    {
        while (control.Length >= ControlHeaderSize)
        {
            var length = (int)BinaryPrimitives.ReadInt64LittleEndian(control);
            if (length < ControlHeaderSize || length > control.Length) break;
            if (BinaryPrimitives.ReadInt32LittleEndian(control[8..]) == level && BinaryPrimitives.ReadInt32LittleEndian(control[12..]) == type)
            {
                return control[ControlHeaderSize..length];
            }
            control = control[Math.Min(control.Length, (length + 7) & ~7)..];
        }
        return ReadOnlySpan<byte>.Empty;
    }

    /// <summary>Keeps a socket's descriptor from being closed and reused while a native call uses it.</summary>
    public readonly ref struct Lease
    {
        private readonly SafeHandle? _handle;

        public Lease(Socket socket)
        {
            Fd = -1;
            try
            {
                var handle = socket.SafeHandle;
                var added = false;
                handle.DangerousAddRef(ref added);
                if (!added) return;
                _handle = handle;
                Fd = (int)handle.DangerousGetHandle();
            }
            catch (ObjectDisposedException)
            {
            }
        }

        /// <summary>The descriptor, or -1 when the socket is closed.</summary>
        public int Fd { get; }

        public void Dispose() => _handle?.DangerousRelease();
    }
}
