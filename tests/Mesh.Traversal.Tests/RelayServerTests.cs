using Mesh.Traversal.Relay;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Tests;

public sealed class RelayServerTests
{
    private readonly SeededEntropy _entropy = new(7);
    private readonly PrivateKey _relayKey;
    private readonly PrivateKey _alice;
    private readonly PrivateKey _bob;
    private readonly PrivateKey _stranger;
    private readonly HashSet<PublicKey> _registered = new();
    private readonly RelayServer _relay;
    private readonly Output _output = new();
    private readonly NetEndpoint _aliceAt = NetEndpoint.Parse("198.51.100.1:1000");
    private readonly NetEndpoint _bobAt = NetEndpoint.Parse("198.51.100.2:2000");
    private readonly NetEndpoint _strangerAt = NetEndpoint.Parse("198.51.100.3:3000");
    private TimeSpan _now = TimeSpan.FromSeconds(10);

    public RelayServerTests()
    {
        _relayKey = PrivateKey.Generate(_entropy);
        _alice = PrivateKey.Generate(_entropy);
        _bob = PrivateKey.Generate(_entropy);
        _stranger = PrivateKey.Generate(_entropy);
        _registered.Add(_alice.PublicKey);
        _registered.Add(_bob.PublicKey);
        _relay = new RelayServer(_relayKey, _registered.Contains, _entropy, new RelayLimits { BytesPerSecond = 10_000, BurstBytes = 10_000 });
    }

    [Fact]
    public void RegisteredNodesTalkThroughTheRelayByKey()
    {
        LogIn(_alice, _aliceAt);
        LogIn(_bob, _bobAt);
        _relay.Receive(Forward(_bob.PublicKey, "hello bob"u8), _aliceAt, _now, _output);
        var (frame, to) = _output.Sent.Single();
        Assert.Equal(_bobAt, to);
        Assert.Equal(RelayFrameType.Receive, RelayFrame.TypeOf(frame));
        Assert.Equal(_alice.PublicKey.Span.ToArray(), RelayFrame.NodeKey(frame).ToArray());
        Assert.Equal("hello bob"u8.ToArray(), RelayFrame.Payload(frame).ToArray());
    }

    [Fact]
    public void AnUnregisteredClientIsRefusedAndCannotSend()
    {
        var client = new RelayClient("r", _relayKey.PublicKey, _stranger);
        var hello = new byte[RelayFrame.HelloSize];
        client.Poll(_now, hello);
        _relay.Receive(hello, _strangerAt, _now, _output);
        var (refusal, _) = _output.Sent.Single();
        Assert.Equal(RelayFrameType.Refused, RelayFrame.TypeOf(refusal));
        Assert.Equal(RelayRefusal.NotRegistered, RelayFrame.Refusal(refusal));
        Assert.Equal(1, _relay.Dropped(RelayDrop.NotRegistered));

        LogIn(_bob, _bobAt);
        _output.Sent.Clear();
        _relay.Receive(Forward(_bob.PublicKey, "spam"u8), _strangerAt, _now, _output);
        Assert.DoesNotContain(_output.Sent, sent => sent.To == _bobAt);
        Assert.Equal(1, _relay.Dropped(RelayDrop.NotAuthenticated));
        Assert.Equal(0, _relay.Forwarded);
    }

    [Fact]
    public void AStolenAuthFromAnotherAddressOrWithABadMacIsRefused()
    {
        var auth = AuthFor(_alice, _aliceAt);
        _relay.Receive(auth, _strangerAt, _now, _output);
        Assert.Equal(1, _relay.Dropped(RelayDrop.BadCookie));

        var forged = AuthFor(_alice, _strangerAt);
        forged[^1] ^= 1;
        _relay.Receive(forged, _strangerAt, _now, _output);
        Assert.Equal(1, _relay.Dropped(RelayDrop.BadMac));
        Assert.Equal(0, _relay.Clients);
    }

    [Fact]
    public void OversizedPayloadsAndFloodsAreDroppedAndCounted()
    {
        LogIn(_alice, _aliceAt);
        LogIn(_bob, _bobAt);
        _relay.Receive(Forward(_bob.PublicKey, new byte[4096]), _aliceAt, _now, _output);
        Assert.Equal(1, _relay.Dropped(RelayDrop.TooBig));
        for (var i = 0; i < 20; i++) _relay.Receive(Forward(_bob.PublicKey, new byte[1000]), _aliceAt, _now, _output);
        Assert.Equal(10, _relay.Forwarded);
        Assert.Equal(10, _relay.Dropped(RelayDrop.RateLimited));
        _now += TimeSpan.FromSeconds(1);
        _relay.Receive(Forward(_bob.PublicKey, new byte[1000]), _aliceAt, _now, _output);
        Assert.Equal(11, _relay.Forwarded);
    }

    [Fact]
    public void GarbageIsCountedNeverThrown()
    {
        var random = new Random(3);
        for (var i = 0; i < 2000; i++)
        {
            var frame = new byte[random.Next(0, 120)];
            random.NextBytes(frame);
            if (frame.Length >= 6 && i % 2 == 0)
            {
                "MSHR"u8.CopyTo(frame);
                frame[4] = 1;
                frame[5] = (byte)random.Next(0, 9);
            }
            _relay.Receive(frame, _strangerAt, _now, _output);
        }
        Assert.Equal(0, _relay.Forwarded);
        Assert.True(_relay.TotalDropped > 1000);
    }

    private void LogIn(PrivateKey node, NetEndpoint at)
    {
        var client = new RelayClient("r", _relayKey.PublicKey, node);
        var buffer = new byte[128];
        var length = client.Poll(_now, buffer);
        _output.Sent.Clear();
        _relay.Receive(buffer.AsSpan(0, length), at, _now, _output);
        var challenge = _output.Sent.Single().Frame;
        length = client.OnControl(challenge, _now, buffer);
        _output.Sent.Clear();
        _relay.Receive(buffer.AsSpan(0, length), at, _now, _output);
        client.OnControl(_output.Sent.Single().Frame, _now, buffer);
        _output.Sent.Clear();
        Assert.True(client.IsAlive(_now));
    }

    private byte[] AuthFor(PrivateKey node, NetEndpoint challengedAt)
    {
        var client = new RelayClient("r", _relayKey.PublicKey, node);
        var buffer = new byte[128];
        var length = client.Poll(_now, buffer);
        _output.Sent.Clear();
        _relay.Receive(buffer.AsSpan(0, length), challengedAt, _now, _output);
        length = client.OnControl(_output.Sent.Single().Frame, _now, buffer);
        _output.Sent.Clear();
        return buffer[..length];
    }

    private static byte[] Forward(PublicKey to, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[RelayFrame.ForwardOverhead + payload.Length];
        RelayFrame.WriteForward(frame, RelayFrameType.Send, to.Span, payload);
        return frame;
    }

    private sealed class Output : IRelayOutput
    {
        public List<(byte[] Frame, NetEndpoint To)> Sent { get; } = new();

        public void Send(ReadOnlySpan<byte> frame, NetEndpoint to) => Sent.Add((frame.ToArray(), to));
    }
}
