using Google.Protobuf;
using Mesh.Coordinator.Sync;
using Mesh.Protos.V1;

namespace Mesh.Coordinator.Tests;

/// <summary>A replica's slices of the map with a policy: shared by kind of node, and kept for a while with the cuts of the deltas since.</summary>
public sealed class MapViewsTests
{
    private const ulong Rule = 5;

    private static Peer Node(ulong id, bool source, bool target, string endpoint = "192.0.2.1:1") => new()
    {
        NodeId = id,
        NodeKey = ByteString.CopyFrom(Enumerable.Repeat((byte)id, 32).ToArray()),
        PolicySources = { source ? [Rule] : Array.Empty<ulong>() },
        PolicyTargets = { target ? [Rule] : Array.Empty<ulong>() },
        Endpoints = new Endpoints { Candidates = { new Candidate { Address = endpoint } } },
    };

    private static SyncResponse Parse(SyncResponse handle) => SyncResponse.Parser.ParseFrom(Transport.ServiceDefinitions.WireBytes(handle));

    [Fact]
    public void AKindOfNodesSliceServesLaterStreamsWithTheCutsSinceThenIsMadeAgain()
    {
        var views = new MapViews();
        // 1 and 2 are sources of the rule, 3 its target, 4 in no rule.
        views.Reset(new NetMap { Serial = 10, PerNode = true, Peers = { Node(1, true, false), Node(2, true, false), Node(3, false, true), Node(4, false, false) } });
        var first = new List<SyncResponse>();
        views.FullMapFor(views.Find(1), ["stun:1"], first);
        Assert.Equal([3UL], Parse(Assert.Single(first)).Full.Peers.Select(p => p.NodeId));

        views.Apply(new NetMapDelta { Serial = 11, PeersChanged = { Node(3, false, true, "198.51.100.3:3") } });
        views.Apply(new NetMapDelta { Serial = 12, PeersChanged = { Node(4, false, false, "198.51.100.4:4") } });
        var later = new List<SyncResponse>();
        views.FullMapFor(views.Find(2), ["stun:1"], later);
        // The same slice (serialized once), then the one cut that concerns this kind: 4 is no peer of it.
        Assert.Same(first[0], later[0]);
        var since = Parse(Assert.Single(later.Skip(1))).Delta;
        Assert.Equal(11UL, since.Serial);
        Assert.Equal("198.51.100.3:3", since.PeersChanged.Single().Endpoints.Candidates[0].Address);

        for (var serial = 13UL; serial <= 13 + MapViews.SliceLifetime; serial++) views.Apply(new NetMapDelta { Serial = serial, PeersChanged = { Node(4, false, false) } });
        var rebuilt = new List<SyncResponse>();
        views.FullMapFor(views.Find(1), ["stun:1"], rebuilt);
        Assert.Equal(13UL + MapViews.SliceLifetime, Parse(Assert.Single(rebuilt)).Full.Serial);
    }

    [Fact]
    public void WithoutAPolicyEveryCutHoldsEverything()
    {
        var views = new MapViews();
        views.Reset(new NetMap { Serial = 1, Peers = { Node(1, false, false), Node(2, false, false) } });
        var first = new List<SyncResponse>();
        views.FullMapFor(null, [], first);
        Assert.Equal(2, Parse(Assert.Single(first)).Full.Peers.Count);
        views.Apply(new NetMapDelta { Serial = 2, PeersChanged = { Node(2, false, false, "198.51.100.2:2") } });
        var later = new List<SyncResponse>();
        views.FullMapFor(null, [], later);
        Assert.Equal([2UL], Parse(later[1]).Delta.PeersChanged.Select(p => p.NodeId));
    }
}
