using Mesh.WireGuard.Core;
using Mesh.WireGuard.Noise;
using static Mesh.WireGuard.Core.ProtocolConstants;

namespace Mesh.WireGuard.Tests;

/// <summary>Every protocol timer, on a manual clock.</summary>
public sealed class TimerTests : ConnectedPair
{
    private void Establish()
    {
        _a.SendTo(_b);
        _net.Pump();
        Assert.True(_a.PeerOf(_b).HasSession);
    }

    private int Initiations(TestNetwork.Node node) => node.SentOfType(MessageType.Initiation);

    [Fact]
    public void LostInitiationIsRetransmittedAfterRekeyTimeoutWithJitter()
    {
        _net.Drop(d => TestNetwork.TypeOf(d) == MessageType.Initiation);
        _a.SendTo(_b);
        Assert.Equal(1, Initiations(_a));
        _net.Run(RekeyTimeout - TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(10));
        Assert.Equal(1, Initiations(_a));
        _net.Run(RekeyTimeoutJitterMax + TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(10));
        Assert.Equal(2, Initiations(_a));
    }

    [Fact]
    public void HandshakeAttemptsStopAfterRekeyAttemptTimeAndStagedPacketsAreDropped()
    {
        _net.Drop(d => TestNetwork.TypeOf(d) == MessageType.Initiation);
        _a.SendTo(_b);
        _net.Run(RekeyAttemptTime + TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(100));
        // The first initiation plus one retry per RekeyTimeout until the attempts exceed RekeyAttemptTime / RekeyTimeout.
        Assert.Equal(MaxTimerHandshakes + 2, Initiations(_a));
        Assert.Equal(0, _a.PeerOf(_b).StagedPackets);
        _net.Run(TimeSpan.FromMinutes(2));
        Assert.Equal(MaxTimerHandshakes + 2, Initiations(_a));
    }

    [Fact]
    public void ReceiverSendsKeepaliveAfterKeepaliveTimeoutOfSilence()
    {
        Establish();
        var sentBefore = _b.Sent.Count;
        _net.Run(KeepaliveTimeout - TimeSpan.FromMilliseconds(200));
        Assert.Equal(sentBefore, _b.Sent.Count);
        _net.Run(TimeSpan.FromMilliseconds(400));
        var keepalive = _b.Sent.Skip(sentBefore).Single();
        Assert.Equal(MessageLayout.KeepaliveSize, keepalive.Datagram.Length);
    }

    [Fact]
    public void NoKeepaliveWhenTheReceiverAnsweredWithData()
    {
        Establish();
        _b.SendTo(_a);
        _net.Pump();
        var sentBefore = _b.Sent.Count;
        _net.Run(KeepaliveTimeout + TimeSpan.FromSeconds(1));
        Assert.Equal(sentBefore, _b.Sent.Count);
    }

    [Fact]
    public void NewHandshakeWhenSentDataGetsNoAnswer()
    {
        Establish();
        // B goes silent: its datagrams are lost.
        _net.Drop(d => false);
        var previous = _net.Filter!;
        _net.Filter = (d, from, to) => from == _b.Endpoint ? null : previous(d, from, to);
        _a.SendTo(_b);
        _net.Pump();
        _net.Run(KeepaliveTimeout + RekeyTimeout - TimeSpan.FromMilliseconds(200));
        Assert.Equal(1, Initiations(_a));
        _net.Run(RekeyTimeoutJitterMax + TimeSpan.FromMilliseconds(400));
        Assert.Equal(2, Initiations(_a));
    }

    [Fact]
    public void InitiatorRekeysAfterRekeyAfterTimeWhenSending()
    {
        Establish();
        _net.Run(RekeyAfterTime - TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        _a.SendTo(_b);
        _net.Pump();
        Assert.Equal(1, Initiations(_a));
        _net.Run(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(1));
        _a.SendTo(_b);
        _net.Pump();
        Assert.Equal(2, Initiations(_a));
        Assert.Equal(0, Initiations(_b));
    }

    [Fact]
    public void ResponderDoesNotRekeyOnSendAtRekeyAfterTime()
    {
        Establish();
        _net.Run(RekeyAfterTime + TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1));
        _b.SendTo(_a);
        _net.Pump();
        Assert.Equal(0, Initiations(_b));
    }

    [Fact]
    public void InitiatorRekeysWhenReceivingNearRejectAfterTime()
    {
        Establish();
        var threshold = RejectAfterTime - KeepaliveTimeout - RekeyTimeout;
        // Keep the session used without triggering the send-side rekey: only B sends.
        _net.Run(threshold - TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        var before = Initiations(_a);
        _net.Run(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(1));
        _b.SendTo(_a);
        _net.Pump();
        Assert.Equal(before + 1, Initiations(_a));
    }

    [Fact]
    public void SessionIsNotUsedAfterRejectAfterTime()
    {
        Establish();
        var data = _net.Delivered.Last(d => TestNetwork.TypeOf(d.Datagram) == MessageType.Transport);
        _net.Drop(d => TestNetwork.TypeOf(d) == MessageType.Initiation);
        _net.Run(RejectAfterTime + TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        Assert.False(_a.PeerOf(_b).HasSession);
        var transportsBefore = _a.SentOfType(MessageType.Transport);
        _a.SendTo(_b);
        Assert.Equal(transportsBefore, _a.SentOfType(MessageType.Transport));
        Assert.Equal(1, _a.PeerOf(_b).StagedPackets);

        _b.Device.ReceiveDatagram(data.Datagram, data.From);
        Assert.Equal(1, _b.Device.Stats.Dropped(DropReason.KeypairExpired));
    }

    [Fact]
    public void PersistentKeepaliveKeepsTheMappingAlive()
    {
        Establish();
        // Let B's passive keepalive (10 s after A's data) pass first: it resets A's timer too.
        _net.Run(TimeSpan.FromSeconds(11), TimeSpan.FromSeconds(1));
        var start = _a.Sent.Count;
        _a.Device.SetPersistentKeepalive(_a.PeerOf(_b), TimeSpan.FromSeconds(25));
        _net.Run(TimeSpan.FromSeconds(101), TimeSpan.FromSeconds(1));
        var keepalives = _a.Sent.Skip(start).Count(s => s.Datagram.Length == MessageLayout.KeepaliveSize);
        // One when it is turned on, then one per 25 s of silence: at 25, 50, 75 and 100 s.
        Assert.Equal(5, keepalives);
    }

    [Fact]
    public void KeyMaterialIsZeroedAfterThreeRejectAfterTimes()
    {
        Establish();
        _net.Drop(d => true);
        _net.Run(ZeroKeyMaterialAfter - TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(1));
        var peer = _a.PeerOf(_b);
        Assert.NotNull(peer.Current);
        _net.Run(TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(1));
        Assert.Null(peer.Current);
        Assert.Null(peer.Previous);
        Assert.Null(peer.Next);
        Assert.Equal(HandshakeState.Zeroed, peer.Handshake.State);
    }

    [Fact]
    public void PreviousSessionStillDecryptsAfterRekey()
    {
        Establish();
        _a.SendTo(_b, 10, 1);
        var old = _net.Delivered.Count;
        _net.Pump();
        var onOldSession = _net.Delivered.Skip(old).Last(d => TestNetwork.TypeOf(d.Datagram) == MessageType.Transport);
        _net.Run(RekeyAfterTime + TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        _a.SendTo(_b, 10, 2);
        _net.Pump();
        _net.Run(TimeSpan.FromSeconds(1));
        Assert.Equal(2, Initiations(_a));
        Assert.NotNull(_b.PeerOf(_a).Previous);
        // A late packet of the old session is still accepted once (replay-checked), not an error.
        var receivedBefore = _b.Received.Count;
        _b.Device.ReceiveDatagram(onOldSession.Datagram, onOldSession.From);
        Assert.Equal(receivedBefore, _b.Received.Count);
        Assert.Equal(1, _b.Device.Stats.Dropped(DropReason.ReplayedPacket));
    }
}
