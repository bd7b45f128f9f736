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
        using var pipeline = new CryptoPipeline(a.Device, a, workers: 0, new IoFailures(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance), capacity: 1024);
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

        using (var sender = new CryptoPipeline(a.Device, a, workers: 4, new IoFailures(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance), capacity: 256))
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
        using (var receiver = new CryptoPipeline(b.Device, b, workers: 4, new IoFailures(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance), capacity: 256))
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

    /// <summary>
    /// With the workers on, what one read gave leaves as one batch both ways: one run for the sink (one sendmmsg,
    /// one coalesced TUN write), not a send per packet.
    /// </summary>
    [Fact]
    public void OneReadsPacketsLeaveAsOneBatchWithTheWorkersOn()
    {
        var net = new TestNetwork();
        var (a, b) = net.EstablishedPair();
        const int read = 40;
        var failures = new IoFailures(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        var sentBefore = a.Sent.Count;
        using (var sender = new CryptoPipeline(a.Device, a, workers: 2, failures, capacity: 256))
        {
            using (sender.OpenBatch())
            {
                for (var i = 0; i < read; i++)
                {
                    var packet = Packets.Udp(a.MeshAddress, b.MeshAddress, 1200, (byte)i);
                    var element = sender.Rent();
                    packet.CopyTo(element.PacketSpace);
                    sender.Send(element, packet.Length);
                }
            }
            Assert.True(SpinWait.SpinUntil(() => a.BatchEnds.Count > 0, TimeSpan.FromSeconds(10)), "the batch left");
        }
        Assert.Equal([(sentBefore + read, a.Received.Count)], a.BatchEnds);

        var datagrams = a.Sent.Skip(sentBefore).Select(s => s.Datagram).ToList();
        var receivedBefore = b.Received.Count;
        using (var receiver = new CryptoPipeline(b.Device, b, workers: 2, failures, capacity: 256))
        {
            using (receiver.OpenBatch())
            {
                foreach (var datagram in datagrams)
                {
                    var element = receiver.Rent();
                    datagram.CopyTo(element.DatagramSpace);
                    receiver.Receive(element, datagram.Length, a.Endpoint);
                }
            }
            Assert.True(SpinWait.SpinUntil(() => b.BatchEnds.Count > 0, TimeSpan.FromSeconds(10)), "the batch was written");
        }
        Assert.Equal([(b.Sent.Count, receivedBefore + read)], b.BatchEnds);
        Assert.Equal(0, failures.Total);
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
        using (var receiver = new CryptoPipeline(b.Device, b, workers: 3, new IoFailures(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance), capacity: 16))
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

    [Fact]
    public void AFailureOnAWorkerIsCountedAndTheQueueGoesOn()
    {
        var net = new TestNetwork();
        var (a, b) = net.EstablishedPair();
        var failures = new IoFailures(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        var sentBefore = a.SentOfType(MessageType.Transport);
        a.FailingSends = 3;
        using (var sender = new CryptoPipeline(a.Device, a, workers: 2, failures, capacity: 16))
        {
            for (var i = 0; i < 100; i++)
            {
                var packet = Packets.Udp(a.MeshAddress, b.MeshAddress, 80, (byte)i);
                var element = sender.Rent();
                packet.CopyTo(element.PacketSpace);
                sender.Send(element, packet.Length);
            }
            SpinWait.SpinUntil(() => a.SentOfType(MessageType.Transport) >= sentBefore + 97, TimeSpan.FromSeconds(10));
        }
        Assert.Equal(97, a.SentOfType(MessageType.Transport) - sentBefore);
        Assert.Equal(3, failures.Count(IoThread.Crypto));

        var datagrams = a.Sent.Where(s => TestNetwork.TypeOf(s.Datagram) == MessageType.Transport).Skip(sentBefore).Select(s => s.Datagram).ToList();
        var receivedBefore = b.Received.Count;
        b.FailingWrites = 2;
        using (var receiver = new CryptoPipeline(b.Device, b, workers: 2, failures, capacity: 16))
        {
            foreach (var datagram in datagrams)
            {
                var element = receiver.Rent();
                datagram.CopyTo(element.DatagramSpace);
                receiver.Receive(element, datagram.Length, a.Endpoint);
            }
            SpinWait.SpinUntil(() => b.Received.Count >= receivedBefore + 95, TimeSpan.FromSeconds(10));
        }
        Assert.Equal(95, b.Received.Count - receivedBefore);
        Assert.Equal(5, failures.Count(IoThread.Crypto));
    }

    [Fact]
    public void AHandshakeWorkerThatFailsGoesOnWithTheNextHandshake()
    {
        var net = new TestNetwork();
        var a = net.AddNode("192.0.2.1:51820", "10.0.0.1");
        var b = net.AddNode("192.0.2.2:51820", "10.0.0.2");
        var c = net.AddNode("192.0.2.3:51820", "10.0.0.3");
        TestNetwork.Connect(a, b);
        TestNetwork.Connect(c, b);
        var failures = new IoFailures(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        using var workers = new HandshakeWorkers(b.Device, 1, failures);
        b.FailingSends = 1;
        a.SendTo(b);
        Assert.True(workers.TryTake(a.Sent.Single(s => TestNetwork.TypeOf(s.Datagram) == MessageType.Initiation).Datagram, a.Endpoint));
        SpinWait.SpinUntil(() => failures.Count(IoThread.Handshake) == 1, TimeSpan.FromSeconds(10));
        Assert.Equal(1, failures.Count(IoThread.Handshake));

        c.SendTo(b);
        Assert.True(workers.TryTake(c.Sent.Single(s => TestNetwork.TypeOf(s.Datagram) == MessageType.Initiation).Datagram, c.Endpoint));
        SpinWait.SpinUntil(() => b.SentOfType(MessageType.Response) == 1, TimeSpan.FromSeconds(10));
        Assert.Equal(c.Endpoint, b.Sent.Single(s => TestNetwork.TypeOf(s.Datagram) == MessageType.Response).To);
    }
}
