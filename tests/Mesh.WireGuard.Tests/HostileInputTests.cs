using Mesh.WireGuard.Core;
using Mesh.WireGuard.Noise;

namespace Mesh.WireGuard.Tests;

public sealed class HostileInputTests
{
    [Fact]
    public void RandomGarbageNeverThrowsAndIsCounted()
    {
        var net = new TestNetwork();
        var (a, b) = net.EstablishedPair();
        var random = new Random(7);
        var from = NetEndpoint.Parse("203.0.113.1:9");
        long count = 0;
        foreach (var size in new[] { 0, 1, 3, 4, 15, 16, 31, 32, 63, 64, 91, 92, 93, 147, 148, 149, 1500 })
        {
            for (var type = 0; type <= 5; type++)
            {
                var datagram = new byte[size];
                random.NextBytes(datagram);
                if (size >= 4) BitConverter.GetBytes((uint)type).CopyTo(datagram, 0);
                b.Device.ReceiveDatagram(datagram, from);
                count++;
            }
        }
        Assert.Equal(count, b.Device.Stats.TotalDropped);
        Assert.Single(b.Received);
        Assert.DoesNotContain(b.Sent, s => s.To == from);
    }

    [Fact]
    public void TruncatedAndOversizedHandshakesAreWrongSize()
    {
        var net = new TestNetwork();
        var b = net.AddNode("192.0.2.2:1", "10.0.0.2");
        var from = NetEndpoint.Parse("203.0.113.1:9");
        foreach (var (type, size) in new[] { (1, 147), (1, 149), (2, 91), (2, 93), (3, 63), (3, 65) })
        {
            var datagram = new byte[size];
            datagram[0] = (byte)type;
            b.Device.ReceiveDatagram(datagram, from);
        }
        Assert.Equal(6, b.Device.Stats.Dropped(DropReason.WrongSize));
    }

    [Fact]
    public void ReservedBytesMustBeZero()
    {
        var net = new TestNetwork();
        var b = net.AddNode("192.0.2.2:1", "10.0.0.2");
        var datagram = new byte[148];
        datagram[0] = 1;
        datagram[2] = 1;
        b.Device.ReceiveDatagram(datagram, NetEndpoint.Parse("203.0.113.1:9"));
        Assert.Equal(1, b.Device.Stats.Dropped(DropReason.UnknownMessageType));
    }

    [Fact]
    public void InitiationWithBadMac1IsDroppedBeforeAnyCryptography()
    {
        var net = new TestNetwork();
        var a = net.AddNode("192.0.2.1:1", "10.0.0.1");
        var b = net.AddNode("192.0.2.2:1", "10.0.0.2");
        TestNetwork.Connect(a, b);
        net.Filter = (d, _, _) =>
        {
            if (TestNetwork.TypeOf(d) == MessageType.Initiation) d[120] ^= 0xff;
            return d;
        };
        a.SendTo(b);
        net.Pump();
        Assert.Equal(1, b.Device.Stats.Dropped(DropReason.BadMac1));
        Assert.Empty(b.Sent);
    }
}
