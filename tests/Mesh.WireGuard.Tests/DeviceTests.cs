using Mesh.WireGuard.Core;
using Mesh.WireGuard.Noise;

namespace Mesh.WireGuard.Tests;

public sealed class DeviceTests : ConnectedPair
{
    [Fact]
    public void FirstPacketTriggersHandshakeAndArrives()
    {
        _a.SendTo(_b, 100, marker: 7);
        Assert.Equal(1, _a.PeerOf(_b).StagedPackets);
        _net.Pump();
        var packet = Assert.Single(_b.Received);
        Assert.Equal(128, packet.Length);
        Assert.Equal(7, packet[^1]);
        Assert.Equal(1, _a.SentOfType(MessageType.Initiation));
        Assert.Equal(1, _b.SentOfType(MessageType.Response));
        Assert.True(_a.PeerOf(_b).HasSession);
        Assert.True(_b.PeerOf(_a).HasSession);
        Assert.NotNull(_a.PeerOf(_b).LatestHandshake);
    }

    [Fact]
    public void DataFlowsBothWaysOnOneSession()
    {
        _a.SendTo(_b);
        _net.Pump();
        for (var i = 0; i < 10; i++)
        {
            _b.SendTo(_a, 50, (byte)i);
            _a.SendTo(_b, 60, (byte)i);
        }
        _net.Pump();
        Assert.Equal(10, _a.Received.Count);
        Assert.Equal(11, _b.Received.Count);
        Assert.Equal(1, _a.SentOfType(MessageType.Initiation) + _b.SentOfType(MessageType.Initiation));
        Assert.Equal(0, _a.Device.Stats.TotalDropped + _b.Device.Stats.TotalDropped);
    }

    [Fact]
    public void TransportIsPaddedToSixteen()
    {
        _a.SendTo(_b, 1);
        _net.Pump();
        var data = _net.Delivered.Last(d => TestNetwork.TypeOf(d.Datagram) == MessageType.Transport);
        Assert.Equal(0, (data.Datagram.Length - 32) % 16);
        Assert.Equal(0, Device.PaddingSize(1420, 1420));
        Assert.Equal(3, Device.PaddingSize(1417, 1420));
        Assert.Equal(15, Device.PaddingSize(1, 1420));
    }

    [Fact]
    public void CountersTrackBytes()
    {
        _a.SendTo(_b, 100);
        _net.Pump();
        Assert.True(_a.PeerOf(_b).TxBytes > 148 + 128);
        Assert.True(_b.PeerOf(_a).RxBytes >= 128 + 32);
    }

    [Fact]
    public void TamperedTransportIsDroppedAndCounted()
    {
        _a.SendTo(_b);
        _net.Pump();
        _net.Filter = (d, _, _) =>
        {
            if (TestNetwork.TypeOf(d) == MessageType.Transport) d[^1] ^= 1;
            return d;
        };
        _a.SendTo(_b);
        _net.Pump();
        Assert.Single(_b.Received);
        Assert.Equal(1, _b.Device.Stats.Dropped(DropReason.AuthenticationFailed));
    }

    [Fact]
    public void ReplayedTransportIsDroppedAndCounted()
    {
        _a.SendTo(_b);
        _net.Pump();
        var data = _net.Delivered.Last(d => TestNetwork.TypeOf(d.Datagram) == MessageType.Transport);
        _b.Device.ReceiveDatagram(data.Datagram, data.From);
        _b.Device.ReceiveDatagram(data.Datagram, data.From);
        Assert.Single(_b.Received);
        Assert.Equal(2, _b.Device.Stats.Dropped(DropReason.ReplayedPacket));
    }

    [Fact]
    public void ReplayedInitiationIsRefused()
    {
        _a.SendTo(_b);
        _net.Pump();
        var initiation = _net.Delivered.First(d => TestNetwork.TypeOf(d.Datagram) == MessageType.Initiation);
        var responsesBefore = _b.SentOfType(MessageType.Response);
        _net.Clock.Advance(TimeSpan.FromSeconds(1));
        _b.Device.ReceiveDatagram(initiation.Datagram, initiation.From);
        Assert.Equal(responsesBefore, _b.SentOfType(MessageType.Response));
        Assert.Equal(1, _b.Device.Stats.Dropped(DropReason.ReplayedInitiation));
        Assert.True(_b.PeerOf(_a).HasSession);
    }

    [Fact]
    public void InnerSourceOutsideAllowedIpsIsDropped()
    {
        _a.SendTo(_b);
        _net.Pump();
        _a.Device.SendPacket(Packets.Udp(System.Net.IPAddress.Parse("10.9.0.66"), _b.MeshAddress, 10));
        _net.Pump();
        Assert.Single(_b.Received);
        Assert.Equal(1, _b.Device.Stats.Dropped(DropReason.AllowedIpsMismatch));
    }

    [Fact]
    public void PacketWithoutRouteIsDropped()
    {
        _a.Device.SendPacket(Packets.Udp(_a.MeshAddress, System.Net.IPAddress.Parse("10.200.0.1"), 10));
        Assert.Equal(1, _a.Device.Stats.Dropped(DropReason.NoRoute));
        Assert.Empty(_a.Sent);
    }

    [Fact]
    public void ResponderWaitsForInitiatorsFirstPacketBeforeUsingSession()
    {
        // B learns of A only through A's handshake; until A's first data arrives, B's keypair is "next".
        _net.Drop(d => TestNetwork.TypeOf(d) == MessageType.Transport);
        _a.SendTo(_b);
        _net.Pump();
        Assert.False(_b.PeerOf(_a).HasSession);
        _net.Filter = null;
        _a.SendTo(_b);
        _net.Pump();
        Assert.True(_b.PeerOf(_a).HasSession);
    }

    [Fact]
    public void SimultaneousInitiationsConverge()
    {
        // Each side answers the other's initiation and forgets its own, so both hold an unconfirmed
        // session; the jittered retransmission after RekeyTimeout settles it, as in wireguard-go.
        _a.SendTo(_b);
        _b.SendTo(_a);
        _net.Pump();
        _net.Run(ProtocolConstants.RekeyTimeout * 3);
        _a.SendTo(_b, 10, 1);
        _b.SendTo(_a, 10, 2);
        _net.Pump();
        Assert.Contains(_b.Received, p => p[^1] == 1);
        Assert.Contains(_a.Received, p => p[^1] == 2);
    }

    [Fact]
    public void RoamingFollowsTheLatestAuthenticatedSource()
    {
        _a.SendTo(_b);
        _net.Pump();
        var roamed = NetEndpoint.Parse("203.0.113.77:40000");
        _b.SourceOverride = roamed;
        _a.SendTo(_b);
        _net.Pump();
        Assert.Equal(roamed, _b.PeerOf(_a).Endpoint);
        _b.SendTo(_a);
        Assert.Equal(roamed, _b.Sent.Last().To);
    }

    [Fact]
    public void UnauthenticatedPacketsDoNotMoveTheEndpoint()
    {
        _a.SendTo(_b);
        _net.Pump();
        var garbage = new byte[64];
        garbage[0] = 4;
        _b.Device.ReceiveDatagram(garbage, NetEndpoint.Parse("203.0.113.99:1"));
        Assert.Equal(_a.Endpoint, _b.PeerOf(_a).Endpoint);
    }

    [Fact]
    public void RemovingAPeerForgetsItsSessionsAndRoutes()
    {
        _a.SendTo(_b);
        _net.Pump();
        Assert.True(_b.Device.RemovePeer(_a.Key.PublicKey));
        _a.SendTo(_b);
        _net.Pump();
        Assert.Single(_b.Received);
        Assert.Equal(1, _b.Device.Stats.Dropped(DropReason.UnknownIndex));
        Assert.Null(_b.Device.AllowedIps.Lookup(_a.MeshAddress));
    }

    [Fact]
    public void UnknownPeerInitiationIsRejected()
    {
        var stranger = _net.AddNode("192.0.2.200:51820", "10.9.0.200");
        stranger.AddPeer(_b, knowsEndpoint: true);
        stranger.SendTo(_b);
        _net.Pump();
        Assert.Equal(1, _b.Device.Stats.Dropped(DropReason.HandshakeRejected));
        Assert.Equal(0, _b.SentOfType(MessageType.Response));
    }
}
