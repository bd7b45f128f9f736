using Mesh.Protos.V1;
using Mesh.Traversal.Paths;
using Mesh.Traversal.Relay;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Tests;

/// <summary>
/// The mesh bind on a manual clock: every datagram is sorted once (WireGuard to the device, a relay's frame unwrapped
/// to the sender it carries, the rest to the engine or dropped and counted), the other sockets and relay links reach
/// the device through the second receiver, and sends go where the engine's route says, with a relay's copy only
/// while a direct path is unconfirmed.
/// </summary>
public sealed class MeshBindTests : IDisposable
{
    private static readonly NetEndpoint LocalA = NetEndpoint.Parse("198.51.100.7:41641");
    private static readonly NetEndpoint LocalB = NetEndpoint.Parse("198.51.100.8:41641");
    private static readonly NetEndpoint RelayUdp = TestRelay.Udp;
    private static readonly NetEndpoint Elsewhere = NetEndpoint.Parse("192.0.2.9:5000");

    private readonly TestRelay _relay = new();
    private readonly PathHarness _a = new(seed: 1);
    private readonly PathHarness _b = new(seed: 2);

    public void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
        _relay.Dispose();
    }

    private Protos.V1.Relay Relay() => _relay.Announced();

    private static byte[] Transport(byte fill)
    {
        var datagram = new byte[48];
        datagram[0] = 4;
        datagram.AsSpan(16).Fill(fill);
        return datagram;
    }

    private static byte[] Received(PublicKey from, byte[] payload)
    {
        var frame = new byte[RelayFrame.ForwardOverhead + payload.Length];
        RelayFrame.WriteForward(frame, RelayFrameType.Receive, from.Span, payload);
        return frame;
    }

    [Fact]
    public void OneReceiveIsSortedOnce()
    {
        _a.Discover(LocalA, LocalA, LocalA);
        _a.Engine.SetRelays([Relay()]);
        var synthetic = _a.Engine.UpsertPeer(_b.Key.PublicKey, new Endpoints { NatMapping = NatMapping.EndpointDependent }, online: true);
        using var stranger = PrivateKey.Generate();
        var direct = Transport(1);
        var relayed = Transport(2);
        var stray = _a.Engine.StrayDatagrams;

        _a.Output.Arrive(direct, Elsewhere);
        _a.Output.Arrive(Received(_b.Key.PublicKey, relayed), RelayUdp);
        _a.Output.Arrive(Received(_b.Key.PublicKey, Transport(3)), Elsewhere);
        _a.Output.Arrive(Received(stranger.PublicKey, Transport(4)), RelayUdp);
        _a.Output.Arrive([1, 2, 3, 4, 5, 6, 7, 8], Elsewhere);
        var kept = _a.Drain(0);

        Assert.Equal(2, kept.Count);
        Assert.Equal(direct, kept[0].Datagram);
        Assert.Equal(Elsewhere, kept[0].Source);
        Assert.Equal(relayed, kept[1].Datagram);
        Assert.Equal(synthetic, kept[1].Source);
        Assert.Equal(2, _a.Bind.StrayDatagrams);
        Assert.Equal(stray + 1, _a.Engine.StrayDatagrams);
    }

    [Fact]
    public void TheOtherSocketsReachTheDeviceThroughTheSecondReceiver()
    {
        var socket = _a.Links.OpenSocket();
        var datagram = Transport(5);
        _a.Output.Receivers[socket](socket, datagram, Elsewhere);
        _a.Output.Receivers[socket](socket, [1, 2, 3, 4, 5, 6, 7, 8], Elsewhere);

        Assert.Empty(_a.Drain(0));
        var kept = Assert.Single(_a.Drain(1));
        Assert.Equal(datagram, kept.Datagram);
        Assert.Equal(Elsewhere, kept.Source);
        Assert.Equal(1, _a.Engine.StrayDatagrams);
    }

    [Fact]
    public void ADatagramForNoPeerLeavesAsItIsAndAPeerWithoutARouteIsCounted()
    {
        _a.Bind.Send(Transport(6), Elsewhere, null);
        var sent = Assert.Single(_a.Output.Take());
        Assert.Equal((0, Elsewhere), (sent.Socket, sent.To));

        var synthetic = _a.Engine.UpsertPeer(_b.Key.PublicKey, null, online: true);
        _a.Bind.Send(Transport(7), synthetic, null);
        Assert.Empty(_a.Output.Take());
        Assert.Equal(1, _a.Engine.NoRoute);
    }

    [Fact]
    public void TheRelayCarriesACopyOnlyWhileTheDirectPathIsUnconfirmed()
    {
        _a.Discover(LocalA, LocalA, LocalA);
        _b.Discover(LocalB, LocalB, LocalB);
        _a.Engine.SetRelays([Relay()]);
        var synthetic = _a.Engine.UpsertPeer(_b.Key.PublicKey, Local(LocalB), online: true);
        _b.Engine.UpsertPeer(_a.Key.PublicKey, Local(LocalA), online: true);
        for (var step = 0; _a.Engine.StatusOf(_b.Key.PublicKey)!.Path != PathKind.Direct || _a.Engine.HomeRelay is null; step++)
        {
            Assert.True(step < 500, "no direct path and relay session");
            Step(answer: true);
        }

        _a.Bind.Send(Transport(8), synthetic, null);
        var confirmed = _a.Output.Take();
        Assert.Equal([LocalB], confirmed.Select(s => s.To));

        // b falls silent: once the trust window has passed without a pong, the relay carries a copy.
        for (var elapsed = TimeSpan.Zero; elapsed <= _a.Engine.Options.TrustWindow; elapsed += TimeSpan.FromMilliseconds(10)) Step(answer: false);
        _a.Output.Take();
        _a.Bind.Send(Transport(9), synthetic, null);
        var unconfirmed = _a.Output.Take();
        Assert.Equal([LocalB, RelayUdp], unconfirmed.Select(s => s.To));
        Assert.Equal(RelayFrameType.Send, RelayFrame.TypeOf(unconfirmed[1].Bytes));
        Assert.Equal(Transport(9), RelayFrame.Payload(unconfirmed[1].Bytes).ToArray());
    }

    private static Endpoints Local(NetEndpoint address) => new()
    {
        NatMapping = NatMapping.None,
        Candidates = { new Candidate { Address = address.ToString(), Kind = CandidateKind.Local } },
    };

    /// <summary>10 ms of both nodes: a's frames to the relay server and back, and (when <paramref name="answer"/>) what each sends the other.</summary>
    private void Step(bool answer)
    {
        _a.Engine.Tick();
        _b.Engine.Tick();
        var fromRelay = new List<(byte[] Frame, NetEndpoint To)>();
        foreach (var sent in _a.Output.Take())
        {
            if (sent.To == RelayUdp) fromRelay.AddRange(_relay.Receive(sent.Bytes, LocalA, _a.Clock.Now));
            else if (answer && sent.To == LocalB) _b.Receive(sent.Bytes, LocalA);
        }
        foreach (var sent in _b.Output.Take())
        {
            if (answer && sent.To == LocalA) _a.Receive(sent.Bytes, LocalB);
        }
        foreach (var (frame, to) in fromRelay)
        {
            if (to == LocalA) _a.Receive(frame, RelayUdp);
        }
        _a.Clock.Advance(TimeSpan.FromMilliseconds(10));
        _b.Clock.Advance(TimeSpan.FromMilliseconds(10));
    }
}
