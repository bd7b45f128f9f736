using System.Buffers.Binary;
using Google.Protobuf;
using Mesh.Protos.V1;
using Mesh.Traversal.Node;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;
using Mesh.Tests.Shared;
using Peer = Mesh.Protos.V1.Peer;

namespace Mesh.Traversal.Tests;

/// <summary>The agent's filter on what peers send: rules by source token, protocol and port; replies to this node's own flows pass.</summary>
public sealed class PolicyFilterTests : IDisposable
{
    private const ulong LaptopRule = 1;
    private readonly Device _device = new(new NoOutput());
    private readonly PolicyFilter _filter = new();
    private readonly WireGuard.Core.Peer _laptop;
    private readonly WireGuard.Core.Peer _stranger;

    public PolicyFilterTests()
    {
        using var a = PrivateKey.Generate();
        using var b = PrivateKey.Generate();
        _laptop = _device.GetOrAddPeer(a.PublicKey);
        _stranger = _device.GetOrAddPeer(b.PublicKey);
        var filter = new PacketFilter { Rules = { new FilterRule { Source = LaptopRule, Protocols = { 6 }, Ports = { new PortRange { First = 22, Last = 22 } } } } };
        _filter.SetFilter(true, filter, [(_laptop, new Peer { PolicySources = { LaptopRule } }), (_stranger, new Peer { PolicySources = { 7 } })]);
    }

    public void Dispose() => _device.Dispose();

    [Fact]
    public void ARuleOpensItsPortToItsSourcesOnly()
    {
        Assert.True(_filter.Admits(_laptop, Tcp(syn: true, ack: false, dstPort: 22)));
        Assert.False(_filter.Admits(_laptop, Tcp(syn: true, ack: false, dstPort: 80)));
        Assert.False(_filter.Admits(_stranger, Tcp(syn: true, ack: false, dstPort: 22)));
        Assert.False(_filter.Admits(_laptop, Udp(srcPort: 5000, dstPort: 22)));
        Assert.Equal(2, _filter.Dropped(FilterDrop.TcpNotAllowed));
        Assert.Equal(1, _filter.Dropped(FilterDrop.UdpNotAllowed));
    }

    [Fact]
    public void RepliesToFlowsThisNodeOpenedPass()
    {
        // A SYN-ACK and the rest of a connection this node opened (the peer may not open one here).
        Assert.True(_filter.Admits(_stranger, Tcp(syn: true, ack: true, dstPort: 40000)));
        Assert.True(_filter.Admits(_stranger, Tcp(syn: false, ack: true, dstPort: 40000)));
        // UDP: only the reverse of a flow sent from here.
        Assert.False(_filter.Admits(_stranger, Udp(srcPort: 53, dstPort: 40001)));
        _filter.Opened(Udp(srcPort: 40001, dstPort: 53, reverse: true));
        Assert.True(_filter.Admits(_stranger, Udp(srcPort: 53, dstPort: 40001)));
        Assert.False(_filter.Admits(_stranger, Udp(srcPort: 54, dstPort: 40001)));
        // ICMP: an echo reply passes, an echo request needs a rule.
        Assert.True(_filter.Admits(_stranger, Icmp(type: 0)));
        Assert.False(_filter.Admits(_stranger, Icmp(type: 8)));
    }

    [Fact]
    public void WithAPolicyButNoFilterYetNothingPassesAndWithoutOneEverythingDoes()
    {
        _filter.SetFilter(true, null, []);
        Assert.False(_filter.Admits(_laptop, Tcp(syn: true, ack: false, dstPort: 22)));
        Assert.Equal(1, _filter.Dropped(FilterDrop.NoFilterYet));
        _filter.SetFilter(false, null, []);
        Assert.True(_filter.Admits(_stranger, Tcp(syn: true, ack: false, dstPort: 80)));
    }

    [Fact]
    public void MalformedPacketsAreDroppedAndCountedAndLaterFragmentsPass()
    {
        Assert.False(_filter.Admits(_laptop, new byte[] { 0x45, 0, 0 }));
        var truncated = Tcp(syn: true, ack: false, dstPort: 22)[..24];
        Assert.False(_filter.Admits(_laptop, truncated));
        Assert.Equal(2, _filter.Dropped(FilterDrop.Malformed));
        var fragment = Udp(srcPort: 1, dstPort: 2);
        BinaryPrimitives.WriteUInt16BigEndian(fragment.AsSpan(6), 185);
        Assert.True(_filter.Admits(_stranger, fragment));
        // A fragment that would overlap the first one's ports and flags (RFC 1858) is malformed.
        BinaryPrimitives.WriteUInt16BigEndian(fragment.AsSpan(6), 1);
        Assert.False(_filter.Admits(_stranger, fragment));
        Assert.Equal(3, _filter.Dropped(FilterDrop.Malformed));
    }

    private static byte[] Ipv4(byte protocol, int transportLength, bool reverse)
    {
        var packet = new byte[20 + transportLength];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        packet[8] = 64;
        packet[9] = protocol;
        byte[] peer = [100, 64, 0, 2], self = [100, 64, 0, 1];
        (reverse ? self : peer).CopyTo(packet, 12);
        (reverse ? peer : self).CopyTo(packet, 16);
        return packet;
    }

    private static byte[] Tcp(bool syn, bool ack, int dstPort)
    {
        var packet = Ipv4(6, 20, reverse: false);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(20), 33333);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(22), (ushort)dstPort);
        packet[32] = 0x50;
        packet[33] = (byte)((syn ? 0x02 : 0) | (ack ? 0x10 : 0));
        return packet;
    }

    private static byte[] Udp(int srcPort, int dstPort, bool reverse = false)
    {
        var packet = Ipv4(17, 8, reverse);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(20), (ushort)srcPort);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(22), (ushort)dstPort);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(24), 8);
        return packet;
    }

    private static byte[] Icmp(byte type)
    {
        var packet = Ipv4(1, 8, reverse: false);
        packet[20] = type;
        return packet;
    }
}
