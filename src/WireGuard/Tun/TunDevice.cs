using System.Runtime.InteropServices;
using System.Text;

namespace Mesh.WireGuard.Tun;

/// <summary>
/// A Linux TUN interface (/dev/net/tun, IFF_TUN | IFF_NO_PI). With offloads (IFF_VNET_HDR and TUNSETOFFLOAD:
/// checksum, TSO, USO) the kernel hands over TCP and UDP super-packets of up to 64 KB, split here into
/// packets, and takes coalesced ones (<see cref="Coalescing"/>); where the kernel refuses, each read and write
/// is one plain packet. Reads wait in poll() with a timeout so a closing device is noticed.
/// </summary>
public sealed class TunDevice : IDisposable, IFrameWriter
{
    private const ulong TUNSETIFF = 0x400454ca;
    private const short IFF_TUN = 0x0001;
    private const short IFF_NO_PI = 0x1000;
    private const short IFF_VNET_HDR = 0x4000;
    private const ulong TUNSETOFFLOAD = 0x400454d0;
    private const nuint TUN_F_CSUM = 0x01;
    private const nuint TUN_F_TSO4 = 0x02;
    private const nuint TUN_F_TSO6 = 0x04;
    private const nuint TUN_F_USO4 = 0x20;
    private const nuint TUN_F_USO6 = 0x40;
    private const int MaxFrame = VirtioNetHeader.Size + 65535;
    private const int IfNameSize = 16;
    private const int F_GETFL = 3;
    private const int F_SETFL = 4;
    private const int O_NONBLOCK = 0x800;

    private int _fd;
    private readonly byte[]? _readFrame;
    [ThreadStatic] private static byte[]? t_writeFrame;
    private long _malformed;

    private TunDevice(int fd, string name, TunOffloads offloads)
    {
        _fd = fd;
        Name = name;
        Offloads = offloads;
        if (offloads != TunOffloads.None) _readFrame = new byte[MaxFrame];
    }

    public string Name { get; }

    /// <summary>What the kernel agreed to: none, or the virtio header with TSO and, on newer kernels, USO.</summary>
    public TunOffloads Offloads { get; }

    /// <summary>Writes of coalesced frames (<see cref="Coalescing"/>) are possible: the device takes a virtio header.</summary>
    public bool TakesFrames => Offloads != TunOffloads.None;

    /// <summary>Super-packets from the kernel whose header did not fit the packet: dropped.</summary>
    public long MalformedReads => Interlocked.Read(ref _malformed);

    /// <summary>Creates (or attaches to) the TUN interface with this name; it is created down, without addresses.</summary>
    public static TunDevice Create(string name, bool offloads = true)
    {
        if (string.IsNullOrEmpty(name) || Encoding.ASCII.GetByteCount(name) >= IfNameSize)
        {
            throw new ArgumentException($"Interface name \"{name}\" must be 1-{IfNameSize - 1} characters.", nameof(name));
        }
        var fd = Libc.open("/dev/net/tun", Libc.O_RDWR | Libc.O_CLOEXEC);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"Cannot open /dev/net/tun: {Libc.Error(errno)} (needs root or CAP_NET_ADMIN).");
        }
        var request = new byte[40];
        Encoding.ASCII.GetBytes(name, request);
        BitConverter.GetBytes((short)(IFF_TUN | IFF_NO_PI | (offloads ? IFF_VNET_HDR : 0))).CopyTo(request, IfNameSize);
        if (Libc.ioctl(fd, TUNSETIFF, request) < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            Libc.close(fd);
            throw new IOException($"Cannot create TUN interface \"{name}\": {Libc.Error(errno)}.");
        }
        var granted = offloads ? NegotiateOffloads(fd) : TunOffloads.None;
        // Non-blocking: under load a read returns a packet at once, and poll() is needed only when the queue is empty.
        Libc.fcntl(fd, F_SETFL, Libc.fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
        var actual = Encoding.ASCII.GetString(request, 0, IfNameSize).TrimEnd('\0');
        return new TunDevice(fd, actual, granted);
    }

    /// <summary>Checksum offload with TSO, and USO where the kernel has it (6.2 and later); the virtio header stays either way.</summary>
    private static TunOffloads NegotiateOffloads(int fd)
    {
        if (Libc.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6) == 0) return TunOffloads.VirtioHeader | TunOffloads.Tso | TunOffloads.Uso;
        if (Libc.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) == 0) return TunOffloads.VirtioHeader | TunOffloads.Tso;
        Libc.ioctl(fd, TUNSETOFFLOAD, 0);
        return TunOffloads.VirtioHeader;
    }

    /// <summary>
    /// Reads what the kernel has into <paramref name="packets"/> (cleared first): one packet, or a super-packet's
    /// segments. Returns how many, 0 when nothing arrived within the timeout, -1 when the device is closed or gone.
    /// </summary>
    public int Read(PacketBatch packets, int timeoutMs)
    {
        packets.Clear();
        if (_readFrame is null)
        {
            var space = packets.Reserve(65535);
            var read = Read(space, timeoutMs);
            if (read > 0) packets.Commit(read);
            return read;
        }
        var length = Read(_readFrame, timeoutMs);
        if (length <= 0) return length;
        if (length <= VirtioNetHeader.Size || !Segmentation.Split(VirtioNetHeader.Read(_readFrame), _readFrame.AsSpan(VirtioNetHeader.Size, length - VirtioNetHeader.Size), packets))
        {
            Interlocked.Increment(ref _malformed);
            return 0;
        }
        return packets.Count;
    }

    /// <summary>
    /// Reads one packet. Returns 0 when nothing arrived within the timeout, -1 when the device is closed or gone.
    /// </summary>
    private int Read(Span<byte> buffer, int timeoutMs)
    {
        while (true)
        {
            var fd = Volatile.Read(ref _fd);
            if (fd < 0) return -1;
            var read = Libc.read(fd, ref MemoryMarshal.GetReference(buffer), buffer.Length);
            if (read >= 0) return (int)read;
            var errno = Marshal.GetLastPInvokeError();
            if (errno == Libc.EINTR) continue;
            if (errno != Libc.EAGAIN) return -1;

            var poll = new Libc.PollFd { Fd = fd, Events = Libc.POLLIN };
            var ready = Libc.poll(ref poll, 1, timeoutMs);
            if (ready < 0)
            {
                if (Marshal.GetLastPInvokeError() == Libc.EINTR) continue;
                return -1;
            }
            if (ready == 0) return 0;
            if ((poll.Revents & Libc.POLLIN) == 0) return -1;
        }
    }

    /// <summary>Writes one packet; false when the kernel refused it or the device is gone.</summary>
    public bool Write(ReadOnlySpan<byte> packet)
    {
        if (packet.IsEmpty) return false;
        if (!TakesFrames) return WriteRaw(packet);
        if (packet.Length > MaxFrame - VirtioNetHeader.Size) return false;
        var frame = t_writeFrame ??= new byte[MaxFrame];
        frame.AsSpan(0, VirtioNetHeader.Size).Clear();
        packet.CopyTo(frame.AsSpan(VirtioNetHeader.Size));
        return WriteRaw(frame.AsSpan(0, VirtioNetHeader.Size + packet.Length));
    }

    /// <summary>Writes a frame (virtio header, then the packet) as <see cref="Coalescing"/> made it; only when <see cref="TakesFrames"/>.</summary>
    void IFrameWriter.Write(ReadOnlySpan<byte> frame) => WriteRaw(frame);

    private bool WriteRaw(ReadOnlySpan<byte> bytes)
    {
        var fd = Volatile.Read(ref _fd);
        if (fd < 0) return false;
        return Libc.write(fd, ref MemoryMarshal.GetReference(bytes), bytes.Length) == bytes.Length;
    }

    public void Dispose()
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Libc.close(fd);
    }
}

/// <summary>The offloads a TUN device runs with.</summary>
[Flags]
public enum TunOffloads
{
    None = 0,
    VirtioHeader = 1,
    Tso = 2,
    Uso = 4,
}
