using Mesh.Protos.V1;
using Mesh.Traversal.Paths;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Tests;

/// <summary>
/// One peer's own state, decided without the engine (magicsock's endpoint): the candidates a netmap gives, which
/// measured path is best (latency with loss as delay, and a margin before a new one replaces the current), when the
/// chosen path is dead, and which silent paths are forgotten.
/// </summary>
public sealed class PeerPathsTests
{
    private static readonly TimeSpan Trust = TimeSpan.FromSeconds(2.5);
    private static readonly NetEndpoint Lan = NetEndpoint.Parse("192.168.1.2:41641");
    private static readonly NetEndpoint Wan = NetEndpoint.Parse("198.51.100.2:41641");
    private static readonly NetEndpoint Reflexive = NetEndpoint.Parse("198.51.100.2:50123");

    private static PeerPaths NewPeer()
    {
        using var key = PrivateKey.Generate();
        return new PeerPaths(key.PublicKey, NetEndpoint.Parse("[100::1]:0"));
    }

    private static PathState Measured(PeerPaths peer, NetEndpoint remote, TimeSpan at, double latencyMs, int pings = 1, int pongs = 1, int socket = 0)
    {
        var path = new PathState(new PathKey(socket, remote), Technique.Local);
        for (var i = 0; i < pings; i++)
        {
            path.Pinged(at);
            if (i < pongs) path.Answered(at, TimeSpan.FromMilliseconds(latencyMs));
        }
        peer.Paths[path.Key] = path;
        return path;
    }

    [Fact]
    public void ANetmapsCandidatesReplaceTheOldOnesButAddressesProbesCameFromStay()
    {
        var peer = NewPeer();
        var first = new Endpoints { NatMapping = NatMapping.EndpointIndependent, Candidates = { new Candidate { Address = Lan.ToString(), Kind = CandidateKind.Local } } };
        Assert.True(peer.ApplyEndpoints(first, 16));
        Assert.False(peer.ApplyEndpoints(first, 16));
        peer.Candidates[Reflexive] = CandidateKind.PeerReflexive;

        var second = new Endpoints
        {
            NatMapping = NatMapping.EndpointIndependent,
            Candidates =
            {
                new Candidate { Address = Wan.ToString(), Kind = CandidateKind.Stun },
                new Candidate { Address = "not an address", Kind = CandidateKind.Local },
                new Candidate { Address = "198.51.100.3:0", Kind = CandidateKind.Local },
                new Candidate { Address = "198.51.100.4:1", Kind = CandidateKind.Local },
            },
        };
        Assert.True(peer.ApplyEndpoints(second, 2));
        Assert.Equal(new Dictionary<NetEndpoint, CandidateKind> { [Wan] = CandidateKind.Stun, [Reflexive] = CandidateKind.PeerReflexive, [NetEndpoint.Parse("198.51.100.4:1")] = CandidateKind.Local },
            peer.Candidates);
        Assert.Equal(Technique.Stun, peer.TechniqueOf(new PathKey(0, Wan)));
        Assert.Equal(Technique.PeerReflexive, peer.TechniqueOf(new PathKey(0, Lan)));
        Assert.Equal(Technique.Birthday, peer.TechniqueOf(new PathKey(3, Wan)));
        Assert.Equal(1, peer.CountPeerReflexive());
        Assert.Equal(Wan.Address.MapToIPv6().GetAddressBytes(), peer.PublicAddress());
        Assert.True(peer.ApplyEndpoints(new Endpoints { NatMapping = NatMapping.EndpointDependent }, 16));
    }

    /// <summary>On one LAN the peer's probe can come before its candidates do: the path it found is named by them once they come.</summary>
    [Fact]
    public void APathFoundFromThePeersProbeIsNamedByItsCandidateOnceTheyCome()
    {
        var peer = NewPeer();
        var path = new PathState(new PathKey(0, Lan), peer.TechniqueOf(new PathKey(0, Lan)));
        peer.Paths[path.Key] = path;
        Assert.Equal(Technique.PeerReflexive, path.Technique);
        peer.ApplyEndpoints(new Endpoints { Candidates = { new Candidate { Address = Lan.ToString(), Kind = CandidateKind.Local } } }, 8);
        Assert.Equal(Technique.Local, path.Technique);
    }

    [Fact]
    public void TheCheapestAnsweringPathIsChosenAndReplacesTheCurrentOnlyByAQuarter()
    {
        var peer = NewPeer();
        var now = TimeSpan.FromSeconds(100);
        var wan = Measured(peer, Wan, now, latencyMs: 20);
        var lan = Measured(peer, Lan, now - Trust, latencyMs: 1);
        Assert.Same(wan, peer.Choose(now, Trust));

        peer.Best = wan;
        Measured(peer, Reflexive, now, latencyMs: 16);
        Assert.Same(wan, peer.Choose(now, Trust));
        lan.Answered(now, TimeSpan.FromMilliseconds(1));
        Assert.Same(lan, peer.Choose(now, Trust));
        Assert.Same(lan, peer.Choose(now + Trust - TimeSpan.FromTicks(1), Trust));
        Assert.Null(peer.Choose(now + Trust, Trust));
    }

    [Fact]
    public void LossCountsAsDelay()
    {
        var peer = NewPeer();
        var now = TimeSpan.FromSeconds(10);
        Measured(peer, Lan, now, latencyMs: 5, pings: 12, pongs: 6);
        var clean = Measured(peer, Wan, now, latencyMs: 12);
        Assert.Same(clean, peer.Choose(now, Trust));
    }

    [Fact]
    public void TheChosenPathIsDeadOnlyAfterBothTheTimeAndThePings()
    {
        var peer = NewPeer();
        var start = TimeSpan.FromSeconds(1);
        var best = peer.Best = Measured(peer, Wan, start, latencyMs: 10);
        peer.DirectSince = start;
        var deadAfter = TimeSpan.FromSeconds(2);
        for (var i = 0; i < 4; i++) best.Pinged(start + TimeSpan.FromSeconds(i));
        Assert.Null(peer.TakeDeadBest(start + TimeSpan.FromSeconds(5), deadAfter, deadPings: 5));
        best.Pinged(start + TimeSpan.FromSeconds(1.5));
        Assert.Null(peer.TakeDeadBest(start + TimeSpan.FromSeconds(1.9), deadAfter, deadPings: 5));
        Assert.Same(best, peer.TakeDeadBest(start + TimeSpan.FromSeconds(2), deadAfter, deadPings: 5));
        Assert.Null(peer.Best);
        Assert.Null(peer.DirectSince);
        Assert.Empty(peer.Paths);
    }

    [Fact]
    public void SilentPathsAreForgottenButTheChosenOneIsKept()
    {
        var peer = NewPeer();
        var silence = TimeSpan.FromSeconds(60);
        var now = TimeSpan.FromSeconds(500);
        peer.Best = Measured(peer, Wan, now - TimeSpan.FromSeconds(90), latencyMs: 10);
        Measured(peer, Lan, now - TimeSpan.FromSeconds(61), latencyMs: 1);
        var recent = Measured(peer, Reflexive, now - TimeSpan.FromSeconds(59), latencyMs: 3);
        var neverAnswered = new PathState(new PathKey(0, NetEndpoint.Parse("10.0.0.9:1")), Technique.Local);
        neverAnswered.Pinged(now - TimeSpan.FromSeconds(70));
        peer.Paths[neverAnswered.Key] = neverAnswered;

        peer.Prune(now, silence);
        Assert.Equal(new HashSet<NetEndpoint> { Wan, Reflexive }, peer.Paths.Keys.Select(k => k.Remote).ToHashSet());
        Assert.Contains(recent, peer.Paths.Values);
    }
}
