using Mesh.Protos.V1;
using Mesh.Traversal.Paths;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Tests;

/// <summary>
/// The hard-NAT (birthday) search on a manual clock, from each side, where the peer never answers: what it opens,
/// what it sends and at what rate, and that it ends and gives back its sockets.
/// </summary>
public sealed class HardNatSearchTests
{
    private static readonly NetEndpoint Local = NetEndpoint.Parse("192.168.2.10:41641");
    private static readonly NetEndpoint PeerPublic = NetEndpoint.Parse("198.51.100.1:41641");

    private static Endpoints Peer(NatMapping mapping) => new()
    {
        NatMapping = mapping,
        Candidates = { new Candidate { Address = PeerPublic.ToString(), Kind = CandidateKind.Stun } },
    };

    private static PathHarness Node(bool hard)
    {
        var harness = new PathHarness();
        harness.Discover(Local, NetEndpoint.Parse("198.51.100.2:50001"), NetEndpoint.Parse(hard ? "198.51.100.2:61234" : "198.51.100.2:50001"));
        return harness;
    }

    /// <summary>Runs the engine in 10 ms ticks and returns what it sent.</summary>
    private static List<Sent> Run(PathHarness node, TimeSpan duration)
    {
        var sent = new List<Sent>();
        for (var elapsed = TimeSpan.Zero; elapsed < duration; elapsed += TimeSpan.FromMilliseconds(10))
        {
            node.Engine.Tick();
            sent.AddRange(node.Output.Take());
            node.Clock.Advance(TimeSpan.FromMilliseconds(10));
        }
        return sent;
    }

    [Fact]
    public void TheHardSideOpensItsSocketsAfterTheDelayAndOpensMappingsThatDieBeforeThePeersNat()
    {
        using var node = Node(hard: true);
        using var peer = PrivateKey.Generate();
        node.Engine.UpsertPeer(peer.PublicKey, Peer(NatMapping.EndpointIndependent), online: true);
        Run(node, node.Engine.Options.BirthdayDelay - TimeSpan.FromMilliseconds(100));
        Assert.Empty(node.Output.OpenSockets);

        var sent = Run(node, TimeSpan.FromSeconds(5));
        Assert.Equal(node.Engine.Options.BirthdaySockets, node.Output.OpenSockets.Count);
        var fromSearch = sent.Where(s => s.Socket != 0).ToList();
        Assert.All(fromSearch, s => Assert.Equal((PeerPublic, node.Engine.Options.OpeningTtl), (s.To, s.Ttl)));
        // A round from every socket every 2 s: three rounds in these 5 s.
        Assert.Equal(3 * node.Engine.Options.BirthdaySockets, fromSearch.Count);
    }

    [Fact]
    public void TheEasySideSpraysTheHardSidesAddressAtItsRateAndNoFaster()
    {
        using var node = Node(hard: false);
        using var peer = PrivateKey.Generate();
        node.Engine.UpsertPeer(peer.PublicKey, Peer(NatMapping.EndpointDependent), online: true);
        Run(node, node.Engine.Options.BirthdayDelay);
        var sent = Run(node, TimeSpan.FromSeconds(10));
        var spray = sent.Where(s => s.IsProbe && s.To.Address.Equals(PeerPublic.Address) && s.To.Port != PeerPublic.Port).ToList();
        var rate = node.Engine.Options.BirthdayProbesPerSecond;
        Assert.InRange(spray.Count, rate * 9, rate * 10 + rate / 10);
        Assert.True(spray.Select(s => s.To.Port).Distinct().Count() > spray.Count * 9 / 10, "random ports, few repeats");
        Assert.All(spray, s => Assert.True(s.Socket == 0 && s.Ttl == 0 && s.To.Port >= 1024));
        Assert.Empty(node.Output.OpenSockets);
    }

    [Fact]
    public void ASearchThatFindsNothingEndsGivesBackItsSocketsAndSaysWhy()
    {
        using var node = Node(hard: true);
        using var peer = PrivateKey.Generate();
        node.Engine.UpsertPeer(peer.PublicKey, Peer(NatMapping.EndpointIndependent), online: true);
        Run(node, node.Engine.Options.BirthdayDelay + node.Engine.Options.BirthdayDuration + TimeSpan.FromSeconds(1));
        Assert.Empty(node.Output.OpenSockets);
        Assert.Contains("the hard-NAT search found no open port", node.Engine.StatusOf(peer.PublicKey)!.Reason);
    }

    [Fact]
    public void NoMoreSearchesRunAtOnceThanTheBoundAllows()
    {
        using var node = Node(hard: true);
        var peers = Enumerable.Range(0, 4).Select(_ => PrivateKey.Generate()).ToList();
        foreach (var peer in peers) node.Engine.UpsertPeer(peer.PublicKey, Peer(NatMapping.EndpointIndependent), online: true);
        Run(node, node.Engine.Options.BirthdayDelay + TimeSpan.FromSeconds(3));
        Assert.Equal(node.Engine.Options.MaxBirthdaySearches * node.Engine.Options.BirthdaySockets, node.Output.OpenSockets.Count);
        peers.ForEach(peer => peer.Dispose());
    }
}
