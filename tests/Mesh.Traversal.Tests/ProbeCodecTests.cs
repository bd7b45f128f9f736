using Mesh.Traversal.Probes;
using Mesh.Traversal.Stun;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;
using Mesh.WireGuard.Noise;

namespace Mesh.Traversal.Tests;

public sealed class ProbeCodecTests
{
    private readonly ManualClock _clock = new();
    private readonly PrivateKey _aliceKey = PrivateKey.Generate();
    private readonly PrivateKey _bobKey = PrivateKey.Generate();
    private readonly ProbeCodec _alice;
    private readonly ProbeCodec _bob;

    public ProbeCodecTests()
    {
        _alice = new ProbeCodec(_aliceKey, _clock);
        _bob = new ProbeCodec(_bobKey, _clock);
    }

    private bool AnyPeer(PublicKey _) => true;

    [Fact]
    public void PingAndPongRoundTrip()
    {
        var buffer = new byte[ProbeCodec.PongSize];
        var length = _alice.WritePing(buffer, _bobKey.PublicKey, 42);
        Assert.Equal(ProbeResult.Ok, _bob.TryRead(buffer.AsSpan(0, length), AnyPeer, out var ping));
        Assert.Equal(ProbeType.Ping, ping.Type);
        Assert.Equal(_aliceKey.PublicKey, ping.Sender);
        Assert.Equal((UInt128)42, ping.TransactionId);

        var observed = NetEndpoint.Parse("203.0.113.5:61000");
        length = _bob.WritePong(buffer, _aliceKey.PublicKey, ping.TransactionId, observed);
        Assert.Equal(ProbeResult.Ok, _alice.TryRead(buffer.AsSpan(0, length), AnyPeer, out var pong));
        Assert.Equal(ProbeType.Pong, pong.Type);
        Assert.Equal(observed, pong.Observed);
        Assert.Equal((UInt128)42, pong.TransactionId);
    }

    [Fact]
    public void ForgedTamperedReplayedAndMisdirectedProbesAreRefused()
    {
        var ping = new byte[ProbeCodec.PingSize];
        _alice.WritePing(ping, _bobKey.PublicKey, 7);

        var tampered = ping.ToArray();
        tampered[40] ^= 1;
        Assert.Equal(ProbeResult.BadMac, _bob.TryRead(tampered, AnyPeer, out _));

        // Mallory knows both public keys but not a private one: her MAC uses her own key.
        var mallory = new ProbeCodec(PrivateKey.Generate(), _clock);
        var forged = new byte[ProbeCodec.PingSize];
        mallory.WritePing(forged, _bobKey.PublicKey, 7);
        _aliceKey.PublicKey.Span.CopyTo(forged.AsSpan(6));
        Assert.Equal(ProbeResult.BadMac, _bob.TryRead(forged, AnyPeer, out _));

        Assert.Equal(ProbeResult.Ok, _bob.TryRead(ping, AnyPeer, out _));
        Assert.Equal(ProbeResult.Replayed, _bob.TryRead(ping, AnyPeer, out _));

        var carol = new ProbeCodec(PrivateKey.Generate(), _clock);
        var toAlice = new byte[ProbeCodec.PingSize];
        carol.WritePing(toAlice, _aliceKey.PublicKey, 1);
        Assert.Equal(ProbeResult.BadMac, _bob.TryRead(toAlice, AnyPeer, out _));

        Assert.Equal(ProbeResult.UnknownSender, _bob.TryRead(ping, _ => false, out _));
    }

    [Fact]
    public void OutOfOrderProbesAreAcceptedOnce()
    {
        var probes = Enumerable.Range(0, 10).Select(i =>
        {
            var buffer = new byte[ProbeCodec.PingSize];
            _alice.WritePing(buffer, _bobKey.PublicKey, (UInt128)i);
            return buffer;
        }).ToList();
        probes.Reverse();
        Assert.All(probes, p => Assert.Equal(ProbeResult.Ok, _bob.TryRead(p, AnyPeer, out _)));
        Assert.All(probes, p => Assert.Equal(ProbeResult.Replayed, _bob.TryRead(p, AnyPeer, out _)));
    }

    [Fact]
    public void ARestartedSenderIsNotTakenForAReplay()
    {
        var before = new byte[ProbeCodec.PingSize];
        _alice.WritePing(before, _bobKey.PublicKey, 1);
        Assert.Equal(ProbeResult.Ok, _bob.TryRead(before, AnyPeer, out _));
        _clock.Advance(TimeSpan.FromSeconds(1));
        var restarted = new ProbeCodec(_aliceKey, _clock);
        var after = new byte[ProbeCodec.PingSize];
        restarted.WritePing(after, _bobKey.PublicKey, 2);
        Assert.Equal(ProbeResult.Ok, _bob.TryRead(after, AnyPeer, out _));
    }

    [Fact]
    public void MalformedInputIsRefusedNeverThrown()
    {
        var random = new Random(5);
        foreach (var size in new[] { 0, 3, 4, 10, ProbeCodec.PingSize - 1, ProbeCodec.PingSize, ProbeCodec.PongSize + 1, 1500 })
        {
            var datagram = new byte[size];
            random.NextBytes(datagram);
            if (size >= 4) "MSHP"u8.CopyTo(datagram);
            Assert.NotEqual(ProbeResult.Ok, _bob.TryRead(datagram, AnyPeer, out _));
        }
    }

    [Fact]
    public void ProbesStunAndWireGuardAreToldApartByTheirHeaders()
    {
        var ping = new byte[ProbeCodec.PingSize];
        _alice.WritePing(ping, _bobKey.PublicKey, 1);
        var stun = new byte[64];
        var stunLength = StunMessage.WriteBindingRequest(stun, new byte[12]);
        var initiation = new byte[MessageLayout.InitiationSize];
        initiation[0] = 1;

        Assert.True(ProbeCodec.LooksLikeProbe(ping));
        Assert.False(StunMessage.LooksLikeStun(ping));
        Assert.Equal((MessageType)0, MessageLayout.TypeOf(ping));

        Assert.False(ProbeCodec.LooksLikeProbe(stun.AsSpan(0, stunLength)));
        Assert.True(StunMessage.LooksLikeStun(stun.AsSpan(0, stunLength)));
        Assert.False(ProbeCodec.LooksLikeProbe(initiation));
        Assert.False(StunMessage.LooksLikeStun(initiation));
    }
}
