using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace Mesh.Agent.Daemon;

/// <summary>
/// The kernel's routing events (links, IPv4 and IPv6 addresses and routes) from a netlink socket, as one "something
/// changed" signal. .NET's NetworkAddressChanged hears addresses only: a link that comes up with its address already
/// set, or a default route that moves to another interface, would wait for the next poll. A burst of messages (a
/// link going away takes several) is one signal. Its own thread, blocked in poll(2); stops on Dispose.
/// </summary>
internal sealed class NetlinkRouteEvents : IDisposable
{
    private const int AfNetlink = 16;
    private const int SockRaw = 3;
    private const int SockCloexec = 0x80000;
    private const int NetlinkRoute = 0;
    private const uint Groups = 0x1 /* LINK */ | 0x10 /* IPV4_IFADDR */ | 0x40 /* IPV4_ROUTE */ | 0x100 /* IPV6_IFADDR */ | 0x400 /* IPV6_ROUTE */;
    private const short PollIn = 1;
    private const int MsgDontwait = 0x40;
    private const int PollTimeoutMs = 250;

    private readonly int _fd;
    private readonly Action _changed;
    private readonly Thread _thread;
    private volatile bool _stopping;

    private NetlinkRouteEvents(int fd, Action changed)
    {
        _fd = fd;
        _changed = changed;
        _thread = new Thread(Run) { IsBackground = true, Name = "netlink" };
        _thread.Start();
    }

    /// <summary>Listens, calling <paramref name="changed"/> after each burst of events; null (logged) where netlink cannot be opened.</summary>
    public static NetlinkRouteEvents? Open(Action changed, ILogger logger)
    {
        var fd = socket(AfNetlink, SockRaw | SockCloexec, NetlinkRoute);
        if (fd < 0)
        {
            logger.LogWarning("No netlink socket ({Error}): network changes are noticed by polling, within a second", Marshal.GetLastPInvokeErrorMessage());
            return null;
        }
        var address = new SockaddrNl { Family = AfNetlink, Groups = Groups };
        if (bind(fd, ref address, Marshal.SizeOf<SockaddrNl>()) != 0)
        {
            logger.LogWarning("Netlink bind failed ({Error}): network changes are noticed by polling, within a second", Marshal.GetLastPInvokeErrorMessage());
            close(fd);
            return null;
        }
        return new NetlinkRouteEvents(fd, changed);
    }

    private void Run()
    {
        var buffer = new byte[16384];
        var poll = new PollFd { Fd = _fd, Events = PollIn };
        while (!_stopping)
        {
            poll.Revents = 0;
            if (Poll(ref poll, 1, PollTimeoutMs) <= 0) continue;
            // An error on the socket (POLLERR, POLLNVAL) is not a change and would wake poll at once forever: stop listening.
            if ((poll.Revents & PollIn) == 0) break;
            // Everything queued is one change: read it all (an overrun, ENOBUFS, is a change too), then signal once.
            while (recv(_fd, buffer, buffer.Length, MsgDontwait) > 0 || Marshal.GetLastPInvokeError() == 105)
            {
            }
            if (!_stopping) _changed();
        }
        close(_fd);
    }

    public void Dispose()
    {
        _stopping = true;
        _thread.Join();
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct SockaddrNl
    {
        public ushort Family;
        public ushort Pad;
        public uint Pid;
        public uint Groups;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int socket(int domain, int type, int protocol);

    [DllImport("libc", SetLastError = true)]
    private static extern int bind(int fd, ref SockaddrNl address, int length);

    [DllImport("libc", SetLastError = true)]
    private static extern nint recv(int fd, byte[] buffer, nint length, int flags);

    [DllImport("libc", SetLastError = true, EntryPoint = "poll")]
    private static extern int Poll(ref PollFd fds, nuint count, int timeoutMs);

    [DllImport("libc", SetLastError = true)]
    private static extern int close(int fd);
}
