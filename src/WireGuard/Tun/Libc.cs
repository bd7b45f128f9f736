using System.Runtime.InteropServices;

namespace Mesh.WireGuard.Tun;

/// <summary>The few libc calls a TUN device needs.</summary>
internal static class Libc
{
    public const int O_RDWR = 2;
    public const int O_CLOEXEC = 0x80000;
    public const short POLLIN = 1;
    public const int EINTR = 4;
    public const int EAGAIN = 11;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [DllImport("libc", SetLastError = true)]
    public static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", SetLastError = true)]
    public static extern int close(int fd);

    [DllImport("libc", SetLastError = true)]
    public static extern int ioctl(int fd, ulong request, byte[] argument);

    [DllImport("libc", SetLastError = true)]
    public static extern int ioctl(int fd, ulong request, nuint argument);

    [DllImport("libc", SetLastError = true)]
    public static extern int fcntl(int fd, int command, int argument);

    [DllImport("libc", SetLastError = true)]
    public static extern nint read(int fd, ref byte buffer, nint count);

    [DllImport("libc", SetLastError = true)]
    public static extern nint write(int fd, ref byte buffer, nint count);

    [DllImport("libc", SetLastError = true)]
    public static extern int poll(ref PollFd fds, nuint count, int timeoutMs);

    [DllImport("libc")]
    public static extern nint strerror(int errno);

    public static string Error(int errno) => Marshal.PtrToStringUTF8(strerror(errno)) ?? $"errno {errno}";
}
