using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;
using Mesh.WireGuard.Noise;

namespace Mesh.WireGuard.Tests;

public sealed class CookieTests
{
    [Fact]
    public void UnderLoadAnInitiationWithoutCookieGetsACookieReplyAndTheRetryCompletes()
    {
        var net = new TestNetwork();
        var a = net.AddNode("192.0.2.1:1", "10.0.0.1");
        var b = net.AddNode("192.0.2.2:1", "10.0.0.2", new DeviceOptions { UnderLoadHandshakesPerSecond = 0 });
        TestNetwork.Connect(a, b);
        a.SendTo(b);
        net.Pump();
        Assert.Equal(1, b.SentOfType(MessageType.CookieReply));
        Assert.Equal(0, b.SentOfType(MessageType.Response));
        Assert.False(a.PeerOf(b).HasSession);

        net.Run(TimeSpan.FromSeconds(6));
        Assert.Equal(2, a.SentOfType(MessageType.Initiation));
        Assert.Equal(1, b.SentOfType(MessageType.Response));
        Assert.True(a.PeerOf(b).HasSession);
        Assert.Single(b.Received);
    }

    [Fact]
    public void SpoofedInitiationFloodDoesNotKeepARealPeerOut()
    {
        var net = new TestNetwork();
        var a = net.AddNode("192.0.2.1:1", "10.0.0.1");
        var b = net.AddNode("192.0.2.2:1", "10.0.0.2", new DeviceOptions { UnderLoadHandshakesPerSecond = 20 });
        TestNetwork.Connect(a, b);

        // The attacker knows B's public key, so its initiations carry a valid mac1, from ever-changing sources.
        var attacker = PrivateKey.Generate(net.Entropy);
        var fakeHandshake = new Handshake(b.Key.PublicKey);
        fakeHandshake.SetLocalKey(attacker);
        var identity = new LocalIdentity(attacker);
        var mac = new Cookies.CookieGenerator(b.Key.PublicKey);
        var flood = new byte[148];
        var spoofed = 0;
        for (var second = 0; second < 10; second++)
        {
            for (var i = 0; i < 500; i++)
            {
                NoiseProtocol.CreateInitiation(identity, fakeHandshake, (uint)i, net.Clock.UtcNow, net.Entropy, flood);
                mac.AddMacs(flood, net.Clock.Now);
                b.Device.ReceiveDatagram(flood, NetEndpoint.Parse($"203.0.{spoofed / 250 % 250}.{spoofed % 250 + 1}:{1000 + spoofed % 60000}"));
                spoofed++;
            }
            if (second == 2) a.SendTo(b);
            net.Run(TimeSpan.FromSeconds(1));
        }
        Assert.True(a.PeerOf(b).HasSession, "the real peer never got through");
        Assert.Single(b.Received);
        Assert.True(b.Device.Stats.CookieRepliesSent > 4000);
        Assert.Equal(1, b.Device.Stats.HandshakesCompleted);
    }

    [Fact]
    public void CookieReplyForAnotherMessageIsRefused()
    {
        var entropy = new SeededEntropy(1);
        var responder = PrivateKey.Generate(entropy);
        var checker = new Cookies.CookieChecker(responder.PublicKey, entropy);
        var generator = new Cookies.CookieGenerator(responder.PublicKey);
        var message = new byte[148];
        message[0] = 1;
        var source = NetEndpoint.Parse("192.0.2.1:5");
        var reply = new byte[64];
        checker.CreateReply(message, source, TimeSpan.Zero, reply);
        Assert.False(generator.ConsumeReply(reply, TimeSpan.Zero));

        generator.AddMacs(message, TimeSpan.Zero);
        checker.CreateReply(message, source, TimeSpan.Zero, reply);
        reply[40] ^= 1;
        Assert.False(generator.ConsumeReply(reply, TimeSpan.Zero));
        reply[40] ^= 1;
        Assert.True(generator.ConsumeReply(reply, TimeSpan.Zero));

        generator.AddMacs(message, TimeSpan.FromSeconds(1));
        Assert.True(checker.CheckMac1(message));
        Assert.True(checker.CheckMac2(message, source, TimeSpan.FromSeconds(1)));
        Assert.False(checker.CheckMac2(message, NetEndpoint.Parse("192.0.2.1:6"), TimeSpan.FromSeconds(1)));
        Assert.False(checker.CheckMac2(message, source, TimeSpan.FromSeconds(121)));
    }
}
