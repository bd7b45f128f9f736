using Mesh.Protos.V1;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Tests;

/// <summary>
/// A peer's connect notice says it has opened its NAT toward us, so our pings to its public address may go at
/// once. That must hold however the notice and the map that brings the peer are ordered. A node behind a NAT
/// that maps by destination never waits: a cone in front of the peer takes its first ping, and holding it for
/// the fast phase (a notice lost in a stream's restart) left the pair to the hard-NAT search, seconds later.
/// </summary>
public sealed class ConnectNoticeTests
{
    private static readonly NetEndpoint Local = NetEndpoint.Parse("192.168.2.10:41641");
    private static readonly NetEndpoint PeerPublic = NetEndpoint.Parse("198.51.100.1:41641");

    private static Endpoints EasyPeer() => new()
    {
        NatMapping = NatMapping.EndpointIndependent,
        Candidates =
        {
            new Candidate { Address = "192.168.1.10:41641", Kind = CandidateKind.Local },
            new Candidate { Address = PeerPublic.ToString(), Kind = CandidateKind.Stun },
        },
    };

    /// <summary>This node behind a port-keeping NAT: its pings to a peer's public address wait until the peer has sent toward it.</summary>
    private static PathHarness EasyNode()
    {
        var harness = new PathHarness();
        harness.Discover(Local, NetEndpoint.Parse("198.51.100.2:41641"), NetEndpoint.Parse("198.51.100.2:41641"));
        return harness;
    }

    /// <summary>This node behind a NAT that gives each destination its own random port.</summary>
    private static PathHarness HardNode()
    {
        var harness = new PathHarness();
        harness.Discover(Local, NetEndpoint.Parse("198.51.100.2:50001"), NetEndpoint.Parse("198.51.100.2:61234"));
        return harness;
    }

    private static List<Sent> ToPublic(PathHarness harness) => harness.Output.Take().Where(s => s.IsProbe && s.To == PeerPublic).ToList();

    [Fact]
    public void WithoutANoticeThePublicAddressGetsOnlyAnOpeningPacketAndARequest()
    {
        using var node = EasyNode();
        using var peer = PrivateKey.Generate();
        node.Engine.UpsertPeer(peer.PublicKey, EasyPeer(), online: true);
        var sent = ToPublic(node);
        Assert.NotEmpty(sent);
        Assert.All(sent, s => Assert.True(s.Ttl > 0, "only opening packets, which die before the peer's NAT"));
        Assert.Equal([peer.PublicKey], node.Output.ConnectRequests);
    }

    [Fact]
    public void ANoticeThatCameBeforeThePeerWasInTheMapLetsPingsGoWhenItArrives()
    {
        using var node = EasyNode();
        using var peer = PrivateKey.Generate();
        node.Engine.OnConnectNotice(peer.PublicKey, EasyPeer());
        node.Clock.Advance(TimeSpan.FromMilliseconds(200));
        node.Engine.UpsertPeer(peer.PublicKey, EasyPeer(), online: true);
        Assert.Contains(ToPublic(node), s => s.Ttl == 0);
    }

    [Fact]
    public void ANoticeWhileThePeerWasOfflineStillCountsWhenItComesOnline()
    {
        using var node = EasyNode();
        using var peer = PrivateKey.Generate();
        node.Engine.UpsertPeer(peer.PublicKey, null, online: false);
        node.Engine.OnConnectNotice(peer.PublicKey, EasyPeer());
        node.Output.Take();
        node.Clock.Advance(TimeSpan.FromMilliseconds(200));
        node.Engine.UpsertPeer(peer.PublicKey, EasyPeer(), online: true);
        Assert.Contains(ToPublic(node), s => s.Ttl == 0);
    }

    [Fact]
    public void ANoticeOlderThanTheFastPhaseNoLongerCounts()
    {
        using var node = EasyNode();
        using var peer = PrivateKey.Generate();
        node.Engine.OnConnectNotice(peer.PublicKey, EasyPeer());
        node.Clock.Advance(node.Engine.Options.FastProbePhase);
        node.Engine.UpsertPeer(peer.PublicKey, EasyPeer(), online: true);
        Assert.All(ToPublic(node), s => Assert.True(s.Ttl > 0));
    }

    [Fact]
    public void ANodeBehindANatThatMapsByDestinationPingsThePeersPublicAddressAtOnce()
    {
        using var node = HardNode();
        using var peer = PrivateKey.Generate();
        node.Engine.UpsertPeer(peer.PublicKey, EasyPeer(), online: true);
        Assert.Contains(ToPublic(node), s => s.Ttl == 0);
        Assert.Equal([peer.PublicKey], node.Output.ConnectRequests);
    }
}
