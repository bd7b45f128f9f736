using System.Runtime.InteropServices;
using System.Text;

namespace Mesh.WireGuard.Tun;

/// <summary>
/// A Linux TUN interface (/dev/net/tun, IFF_TUN | IFF_NO_PI): each read is one IP packet from the kernel,
/// each write one IP packet to it. Reads wait in poll() with a timeout so a closing device is noticed.
/// </summary>
public sealed class TunDevice : IDisposable
{
    private const ulong TUNSETIFF = 0x400454ca;
    private const short IFF_TUN = 0x0001;
    private const short IFF_NO_PI = 0x1000;
    private const int IfNameSize = 16;
    private const int F_GETFL = 3;
    private const int F_SETFL = 4;
    private const int O_NONBLOCK = 0x800;

    private int _fd;

    private TunDevice(int fd, string name)
    {
        _fd = fd;
        Name = name;
    }

    public string Name { get; }

    /// <summary>Creates (or attaches to) the TUN interface with this name; it is created down, without addresses.</summary>
    public static TunDevice Create(string name)
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
        BitConverter.GetBytes((short)(IFF_TUN | IFF_NO_PI)).CopyTo(request, IfNameSize);
        if (Libc.ioctl(fd, TUNSETIFF, request) < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            Libc.close(fd);
            throw new IOException($"Cannot create TUN interface \"{name}\": {Libc.Error(errno)}.");
        }
        // Non-blocking: under load a read returns a packet at once, and poll() is needed only when the queue is empty.
        Libc.fcntl(fd, F_SETFL, Libc.fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
        var actual = Encoding.ASCII.GetString(request, 0, IfNameSize).TrimEnd('\0');
        return new TunDevice(fd, actual);
    }

    /// <summary>
    /// Reads one packet. Returns 0 when nothing arrived within the timeout, -1 when the device is closed or gone.
    /// </summary>
    public int Read(Span<byte> buffer, int timeoutMs)
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
        var fd = Volatile.Read(ref _fd);
        if (fd < 0 || packet.IsEmpty) return false;
        return Libc.write(fd, ref MemoryMarshal.GetReference(packet), packet.Length) == packet.Length;
    }

    public void Dispose()
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Libc.close(fd);
    }
}
