using Mesh.Protos.V1;
using Mesh.Traversal.Paths;
using Mesh.Traversal.Relay;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Tests;

/// <summary>
/// The relay sessions of the path engine and its bind on a manual clock, against the production relay server: the
/// session comes up over UDP, a peer without a direct path is reached through it (and what the peer sends through
/// it reaches the device as the peer's), and without UDP the session runs over the relay's stream.
/// </summary>
public sealed class RelaySessionTests : IDisposable
{
    private static readonly NetEndpoint Local = NetEndpoint.Parse("198.51.100.7:41641");
    private static readonly NetEndpoint RelayUdp = TestRelay.Udp;

    private readonly TestRelay _relay = new();
    private readonly PrivateKey _peer = PrivateKey.Generate();

    public void Dispose()
    {
        _relay.Dispose();
        _peer.Dispose();
    }

    private Protos.V1.Relay Relay(bool tcp) => _relay.Announced(tcp);

    /// <summary>Ticks the engine for a while, carrying its UDP frames to the relay server and the server's answers back.</summary>
    private List<Sent> Run(PathHarness node, TimeSpan duration)
    {
        var toRelay = new List<Sent>();
        for (var elapsed = TimeSpan.Zero; elapsed < duration; elapsed += TimeSpan.FromMilliseconds(10))
        {
            node.Engine.Tick();
            var fromRelay = new List<(byte[] Frame, NetEndpoint To)>();
            foreach (var sent in node.Output.Take())
            {
                if (sent.To != RelayUdp) continue;
                toRelay.Add(sent);
                fromRelay.AddRange(_relay.Receive(sent.Bytes, Local, node.Clock.Now));
            }
            foreach (var (frame, to) in fromRelay)
            {
                if (to == Local) node.Receive(frame, RelayUdp);
            }
            node.Clock.Advance(TimeSpan.FromMilliseconds(10));
        }
        return toRelay;
    }

    [Fact]
    public void TheSessionComesUpAndCarriesAPeerThatHasNoDirectPath()
    {
        using var node = new PathHarness();
        node.Discover(Local, Local, Local);
        node.Engine.SetRelays([Relay(tcp: false)]);
        var synthetic = node.Engine.UpsertPeer(_peer.PublicKey, new Endpoints { NatMapping = NatMapping.EndpointDependent }, online: true);
        Run(node, TimeSpan.FromSeconds(1));
        Assert.Equal("coordinator", node.Engine.HomeRelay);
        Assert.Equal(1, _relay.Clients);

        var transport = new byte[64];
        transport[0] = 4;
        node.Bind.Send(transport, synthetic, null);
        var sent = node.Output.Take().Single(s => s.To == RelayUdp);
        Assert.Equal(RelayFrameType.Send, RelayFrame.TypeOf(sent.Bytes));
        Assert.Equal(_peer.PublicKey.Span.ToArray(), RelayFrame.NodeKey(sent.Bytes).ToArray());
        Assert.Equal(transport, RelayFrame.Payload(sent.Bytes).ToArray());
        Assert.Equal(PathKind.Relay, node.Engine.StatusOf(_peer.PublicKey)!.Path);

        var back = new byte[RelayFrame.ForwardOverhead + transport.Length];
        RelayFrame.WriteForward(back, RelayFrameType.Receive, _peer.PublicKey.Span, transport);
        var delivered = Assert.Single(node.Receive(back, RelayUdp));
        Assert.Equal(transport, delivered.Datagram);
        Assert.Equal(synthetic, delivered.Source);
    }

    [Fact]
    public void WithoutUdpTheSessionRunsOverTheRelaysStream()
    {
        using var node = new PathHarness();
        node.Engine.NetworkChanged([Local.Address], Local.Port);
        node.Engine.SetStunServers(PathHarness.StunFirst, PathHarness.StunSecond);
        // STUN never answers: NAT discovery ends by its deadline with UDP blocked.
        for (var step = 0; node.Engine.LastNetcheck is null; step++)
        {
            Assert.True(step < 2000, "NAT discovery never ended");
            node.Engine.Tick();
            node.Clock.Advance(TimeSpan.FromMilliseconds(10));
        }
        Assert.True(node.Engine.LastNetcheck!.Value.Report.Verdict.UdpBlocked);
        node.Output.Take();
        node.Engine.SetRelays([Relay(tcp: true)]);
        var toRelayOverUdp = Run(node, TimeSpan.FromSeconds(1));
        Assert.Empty(toRelayOverUdp);
        Assert.Contains(node.Output.StreamFrames, f => f.Relay == "coordinator" && RelayFrame.TypeOf(f.Frame) == RelayFrameType.Hello);
    }
}
