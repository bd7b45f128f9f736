using System.Buffers.Binary;
using Mesh.WireGuard.Host;
using Mesh.WireGuard.Noise;

namespace Mesh.WireGuard.Tests;

public sealed class CryptoPipelineTests
{
    [Fact]
    public void BuffersAreMadeAsLoadNeedsThemNotUpFront()
    {
        var net = new TestNetwork();
        var (a, _) = net.EstablishedPair();
        var before = GC.GetAllocatedBytesForCurrentThread();
        using var pipeline = new CryptoPipeline(a.Device, a, workers: 0, capacity: 1024);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1024 * 1024, "an idle pipeline holds no buffers");
        var first = pipeline.Rent();
        pipeline.Return(first);
        Assert.Same(first, pipeline.Rent());
    }

    [Fact]
    public void ParallelWorkersKeepEachPeersPacketsInOrderBothWays()
    {
        var net = new TestNetwork();
        var (a, b) = net.EstablishedPair();
        const int count = 20_000;

        using (var sender = new CryptoPipeline(a.Device, a, workers: 4, capacity: 256))
        {
            for (var i = 0; i < count; i++)
            {
                var packet = Packets.Udp(a.MeshAddress, b.MeshAddress, 64 + i % 900);
                BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(28), i);
                var element = sender.Rent();
                packet.CopyTo(element.PacketSpace);
                sender.Send(element, packet.Length);
            }
            SpinWait.SpinUntil(() => a.SentOfType(MessageType.Transport) >= count + 1, TimeSpan.FromSeconds(30));
        }
        var transports = a.Sent.Where(s => TestNetwork.TypeOf(s.Datagram) == MessageType.Transport).Skip(1).ToList();
        Assert.Equal(count, transports.Count);
        var counters = transports.Select(t => BinaryPrimitives.ReadUInt64LittleEndian(t.Datagram.AsSpan(8))).ToList();
        Assert.Equal(counters.OrderBy(c => c), counters);

        var receivedBefore = b.Received.Count;
        using (var receiver = new CryptoPipeline(b.Device, b, workers: 4, capacity: 256))
        {
            foreach (var (datagram, _) in transports)
            {
                var element = receiver.Rent();
                datagram.CopyTo(element.DatagramSpace);
                receiver.Receive(element, datagram.Length, a.Endpoint);
            }
            SpinWait.SpinUntil(() => b.Received.Count >= receivedBefore + count, TimeSpan.FromSeconds(30));
        }
        var sequence = b.Received.Skip(receivedBefore).Select(p => BinaryPrimitives.ReadInt32BigEndian(p.AsSpan(28))).ToList();
        Assert.Equal(Enumerable.Range(0, count), sequence);
        Assert.Equal(0, b.Device.Stats.TotalDropped);
    }

    [Fact]
    public void TamperedPacketsAreDroppedWithoutStallingTheQueue()
    {
        var net = new TestNetwork();
        var (a, b) = net.EstablishedPair();
        for (var i = 0; i < 100; i++) a.SendTo(b, 50, (byte)i);
        var datagrams = a.Sent.Where(s => TestNetwork.TypeOf(s.Datagram) == MessageType.Transport).Skip(1).Select(s => s.Datagram.ToArray()).ToList();
        for (var i = 0; i < datagrams.Count; i += 10) datagrams[i][^1] ^= 1;
        var before = b.Received.Count;
        using (var receiver = new CryptoPipeline(b.Device, b, workers: 3, capacity: 16))
        {
            foreach (var datagram in datagrams)
            {
                var element = receiver.Rent();
                datagram.CopyTo(element.DatagramSpace);
                receiver.Receive(element, datagram.Length, a.Endpoint);
            }
            SpinWait.SpinUntil(() => b.Received.Count >= before + 90, TimeSpan.FromSeconds(10));
        }
        Assert.Equal(90, b.Received.Count - before);
        Assert.Equal(10, b.Device.Stats.Dropped(Core.DropReason.AuthenticationFailed));
    }
}
