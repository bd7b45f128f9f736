using System.Net;
using System.Runtime.InteropServices;
using Mesh.WireGuard.Conn;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Host;
using Mesh.WireGuard.Keys;
using Mesh.WireGuard.Tun;
using Xunit.Abstractions;

namespace Mesh.Integration.Tests;

/// <summary>
/// A failure on any of an interface's I/O threads (UDP, TUN, timers, handshake workers) is caught for that one
/// datagram or packet, counted, and the tunnel stays up. Two production interface hosts run in this process, each
/// in a namespace of its own (entered by the thread that makes it: its sockets, TUN device and threads live there),
/// with a router (the mesh's plug) that throws on demand.
/// </summary>
[Collection("mesh")]
public sealed class IoFailureTests(ITestOutputHelper output) : IDisposable
{
    private readonly NetworkLab _lab = new();

    public void Dispose() => _lab.Dispose();

    [DllImport("libc", SetLastError = true)]
    private static extern int setns(int fd, int nstype);

    private const int NewNetworkNamespace = 0x40000000;

    /// <summary>
    /// A plain interface's bind that throws on the next <see cref="FailSends"/> sends, and on the next
    /// <see cref="FailDatagrams"/> receives that bring a datagram that is not WireGuard.
    /// </summary>
    private sealed class FaultyBind(int port) : IBind
    {
        public readonly UdpBind Inner = new(port);
        public int FailSends;
        public int FailDatagrams;

        public int Port => Inner.Port;
        public bool Segmentation => Inner.Segmentation;
        public bool ReceiveCoalescing => Inner.ReceiveCoalescing;
        public int Receivers => 1;

        public int Receive(int receiver, ReceiveBatch batch, int timeoutMs)
        {
            var count = Inner.Receive(receiver, batch, timeoutMs);
            for (var i = 0; i < count; i++)
            {
                if (batch.Datagram(i)[0] == 0 && Interlocked.Decrement(ref FailDatagrams) >= 0) throw new InvalidOperationException("injected failure on a datagram");
            }
            return count;
        }

        public void Send(ReadOnlySpan<byte> datagram, NetEndpoint destination, SendBatch? batch)
        {
            if (Interlocked.Decrement(ref FailSends) >= 0) throw new InvalidOperationException("injected failure on a send");
            Inner.Send(datagram, destination, batch);
        }

        public void Flush(SendBatch batch) => Inner.Flush(batch);
        public bool Rebind(int port) => Inner.Rebind(port);
        public void SetFirewallMark(int mark) => Inner.SetFirewallMark(mark);
        public void Dispose() => Inner.Dispose();
    }

    /// <summary>An interface host made (and started) by a thread inside <paramref name="ns"/>.</summary>
    private static (InterfaceHost Host, FaultyBind Bind) HostIn(string ns, string name, int port, PrivateKey key)
    {
        InterfaceHost? host = null;
        FaultyBind? bind = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var handle = File.OpenHandle($"/var/run/netns/{ns}");
                if (setns((int)handle.DangerousGetHandle(), NewNetworkNamespace) != 0) throw new IOException($"setns: errno {Marshal.GetLastPInvokeError()}");
                bind = new FaultyBind(port);
                host = new InterfaceHost(TunDevice.Create(name), bind);
                host.Device.SetPrivateKey(key);
                host.Start();
            }
            catch (Exception ex)
            {
                failure = ex;
            }
        });
        thread.Start();
        thread.Join();
        return host is not null ? (host, bind!) : throw new InvalidOperationException($"cannot start an interface in {ns}", failure);
    }

    [Fact]
    public void AnInjectedFailureOnEachIoThreadLeavesTheTunnelUp()
    {
        var left = _lab.Namespace("x");
        var right = _lab.Namespace("y");
        _lab.Link(left, "10.66.0.1/24", right, "10.66.0.2/24");
        using var leftKey = PrivateKey.Generate();
        using var rightKey = PrivateKey.Generate();
        var (a, leftRouter) = HostIn(left, _lab.InterfaceName("x"), 51001, leftKey);
        using var leftHost = a;
        var (b, rightRouter) = HostIn(right, _lab.InterfaceName("y"), 51002, rightKey);
        using var rightHost = b;
        foreach (var (ns, name, address) in new[] { (left, _lab.InterfaceName("x"), "10.77.0.1/24"), (right, _lab.InterfaceName("y"), "10.77.0.2/24") })
        {
            _lab.Exec(ns, "ip", "addr", "add", address, "dev", name);
            _lab.Exec(ns, "ip", "link", "set", name, "up");
        }
        var toB = a.Device.GetOrAddPeer(rightKey.PublicKey);
        toB.Endpoint = new NetEndpoint(IPAddress.Parse("10.66.0.2"), 51002);
        a.Device.SetAllowedIps(toB, [IPNetwork.Parse("10.77.0.2/32")], replace: true);
        a.Device.SetPersistentKeepalive(toB, TimeSpan.FromSeconds(1));
        var toA = b.Device.GetOrAddPeer(leftKey.PublicKey);
        b.Device.SetAllowedIps(toA, [IPNetwork.Parse("10.77.0.1/32")], replace: true);

        // Sends throw on both sides: the first initiation (timer thread, as keepalive starts a handshake), the first
        // response (a handshake worker), the first packets of a ping (the TUN thread). Datagrams that are not
        // WireGuard throw on the receiving side's UDP thread (the second is sent once the first was caught, so each
        // arrives in a receive of its own).
        leftRouter.FailSends = 3;
        rightRouter.FailSends = 2;
        rightRouter.FailDatagrams = 2;
        leftRouter.Inner.SendOne([0, 1, 2, 3], new NetEndpoint(IPAddress.Parse("10.66.0.2"), 51002));
        Wait.Until(() => b.Failures.Count(IoThread.Udp) == 1, TimeSpan.FromSeconds(10), "the first datagram's failure is caught");
        leftRouter.Inner.SendOne([0, 4, 5, 6], new NetEndpoint(IPAddress.Parse("10.66.0.2"), 51002));
        Wait.Until(() => _lab.TryExec(left, out _, "ping", "-c", "1", "-W", "1", "10.77.0.2") == 0, TimeSpan.FromSeconds(60), "the tunnel carries a ping");

        var counts = string.Join(", ", Enum.GetValues<IoThread>().Select(t => $"{t} {a.Failures.Count(t)}/{b.Failures.Count(t)}"));
        output.WriteLine($"failures caught (left/right): {counts}");
        Assert.Equal(2, b.Failures.Count(IoThread.Udp));
        Assert.True(a.Failures.Count(IoThread.Timers) + a.Failures.Count(IoThread.Tun) + b.Failures.Count(IoThread.Handshake) >= 3, counts);
        Assert.False(a.Stopped.IsCompleted);
        Assert.False(b.Stopped.IsCompleted);
        Assert.Equal(0, _lab.TryExec(right, out _, "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.77.0.1"));
    }
}
