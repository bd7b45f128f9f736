using Mesh.WireGuard.Core;
using Mesh.WireGuard.Noise;

namespace Mesh.WireGuard.Tests;

public sealed class MessageLimitTests
{
    [Fact]
    public void RekeyAfterMessagesStartsAHandshakeAndRejectAfterMessagesStopsSending()
    {
        var net = new TestNetwork();
        var (a, b) = net.EstablishedPair();
        var keypair = a.PeerOf(b).Current!;

        SetSendCounter(keypair, ProtocolConstants.RekeyAfterMessages + 1);
        net.Drop(d => TestNetwork.TypeOf(d) == MessageType.Initiation);
        net.Clock.Advance(ProtocolConstants.RekeyTimeout);
        a.SendTo(b);
        Assert.Equal(2, a.SentOfType(MessageType.Initiation));

        SetSendCounter(keypair, ProtocolConstants.RejectAfterMessages);
        var transports = a.SentOfType(MessageType.Transport);
        a.SendTo(b);
        Assert.Equal(transports, a.SentOfType(MessageType.Transport));
        Assert.Equal(1, a.PeerOf(b).StagedPackets);
    }

    private static void SetSendCounter(Keypair keypair, ulong value) =>
        typeof(Keypair).GetField("_nextSendCounter", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!
            .SetValue(keypair, unchecked((long)value));
}
