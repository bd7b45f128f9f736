using Google.Protobuf;
using Mesh.Coordinator.Sync;
using Mesh.Protos.V1;

namespace Mesh.Coordinator.Tests;

/// <summary>
/// A replica's slices of the map: shared by kind of node with a policy, kept for a while with the cuts of the deltas
/// since, and made in the form each agent reads (maps in parts and presence by id, or whole records).
/// </summary>
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
        Addresses = { $"100.64.{id / 250}.{id % 250}/32", $"fd7a:115c:a1e0::{id:x}/128" },
        AllowedIps = { $"100.64.{id / 250}.{id % 250}/32", $"fd7a:115c:a1e0::{id:x}/128" },
    };

    /// <summary>The agent's own key: none of the test's peers have it.</summary>
    private static readonly ByteString SelfKey = ByteString.CopyFrom(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());

    private static SyncResponse Parse(SyncResponse handle) => SyncResponse.Parser.ParseFrom(Transport.ServiceDefinitions.WireBytes(handle));

    [Fact]
    public void AKindOfNodesSliceServesLaterStreamsWithTheCutsSinceThenIsMadeAgain()
    {
        var views = new MapViews();
        // 1 and 2 are sources of the rule, 3 its target, 4 in no rule.
        views.Reset(new NetMap { Serial = 10, PerNode = true, Peers = { Node(1, true, false), Node(2, true, false), Node(3, false, true), Node(4, false, false) } });
        var first = new List<SyncResponse>();
        views.FullMapFor(views.GrantsOf(views.Find(1)), ["stun:1"], MapForm.Records, first);
        Assert.Equal([3UL], Parse(Assert.Single(first)).Full.Peers.Select(p => p.NodeId));

        views.Apply(new NetMapDelta { Serial = 11, PeersChanged = { Node(3, false, true, "198.51.100.3:3") } });
        views.Apply(new NetMapDelta { Serial = 12, PeersChanged = { Node(4, false, false, "198.51.100.4:4") } });
        var later = new List<SyncResponse>();
        views.FullMapFor(views.GrantsOf(views.Find(2)), ["stun:1"], MapForm.Records, later);
        // The same slice (serialized once), then the one cut that concerns this kind: 4 is no peer of it.
        Assert.Same(first[0], later[0]);
        var since = Parse(Assert.Single(later.Skip(1))).Delta;
        Assert.Equal(11UL, since.Serial);
        Assert.Equal("198.51.100.3:3", since.PeersChanged.Single().Endpoints.Candidates[0].Address);

        for (var serial = 13UL; serial <= 13 + MapViews.SliceLifetime; serial++) views.Apply(new NetMapDelta { Serial = serial, PeersChanged = { Node(4, false, false) } });
        var rebuilt = new List<SyncResponse>();
        views.FullMapFor(views.GrantsOf(views.Find(1)), ["stun:1"], MapForm.Records, rebuilt);
        Assert.Equal(13UL + MapViews.SliceLifetime, Parse(Assert.Single(rebuilt)).Full.Serial);
    }

    [Fact]
    public void WithoutAPolicyEveryCutHoldsEverything()
    {
        var views = new MapViews();
        views.Reset(new NetMap { Serial = 1, Peers = { Node(1, false, false), Node(2, false, false) } });
        var first = new List<SyncResponse>();
        views.FullMapFor(GrantKey.Everyone, [], MapForm.Records, first);
        Assert.Equal(2, Parse(Assert.Single(first)).Full.Peers.Count);
        views.Apply(new NetMapDelta { Serial = 2, PeersChanged = { Node(2, false, false, "198.51.100.2:2") } });
        var later = new List<SyncResponse>();
        views.FullMapFor(GrantKey.Everyone, [], MapForm.Records, later);
        Assert.Equal([2UL], Parse(later[1]).Delta.PeersChanged.Select(p => p.NodeId));
    }

    [Fact]
    public void ACompactMapComesInBoundedPartsThatAnAgentGathersIntoTheWholeMap()
    {
        var views = new MapViews();
        var peers = Enumerable.Range(1, 600).Select(i => Node((ulong)i, false, false, $"198.51.100.{i % 250}:{40000 + i}")).ToList();
        views.Reset(new NetMap { Serial = 7, Peers = { peers }, MeshPrefixes = { "100.64.0.0/10" }, Relays = { new Relay { Id = "r1", UdpAddress = "192.0.2.9:3479" } } });
        var parts = new List<SyncResponse>();
        views.FullMapFor(GrantKey.Everyone, ["192.0.2.1:3478"], MapForm.Compact, parts);
        Assert.True(parts.Count > 2);
        foreach (var part in parts) Assert.InRange(Transport.ServiceDefinitions.WireBytes(part).Length, 1, MapViews.MaxPartBytes);

        var view = new Mesh.Control.NetMapView(SelfKey);
        for (var i = 0; i < parts.Count; i++) Assert.Equal(i == parts.Count - 1, view.Apply(Parse(parts[i])));
        Assert.Equal(600, view.Peers.Count);
        Assert.Equal("198.51.100.100:40600", view.Peers[600].Endpoints.Candidates[0].Address);
        Assert.Equal(["192.0.2.1:3478"], view.StunServers);
        Assert.Equal("r1", Assert.Single(view.Relays).Id);
        Assert.Equal(7UL, view.Serial);

        // A stream that broke off mid-map: the parts of the next one start over, and the broken one's are dropped.
        var again = new Mesh.Control.NetMapView(SelfKey);
        Assert.False(again.Apply(Parse(parts[0])));
        Assert.False(again.Apply(Parse(parts[2])));
        Assert.False(again.Apply(Parse(parts[^1])));
        Assert.Empty(again.Peers);
        foreach (var part in parts) again.Apply(Parse(part));
        Assert.Equal(600, again.Peers.Count);

        // A stream that broke off mid-map and a new one that resumes with a delta: the delta applies.
        Assert.False(again.Apply(Parse(parts[0])));
        Assert.True(again.Apply(new SyncResponse { Delta = new NetMapDelta { Serial = 8, PeersRemoved = { 1 } } }));
        Assert.Equal(599, again.Peers.Count);
        Assert.False(again.Apply(Parse(parts[1])));

        // An agent that reads whole records gets the same map in one message.
        var whole = new List<SyncResponse>();
        views.FullMapFor(GrantKey.Everyone, ["192.0.2.1:3478"], MapForm.Records, whole);
        Assert.Equal(600, Parse(Assert.Single(whole)).Full.Peers.Count);
    }

    [Fact]
    public void APresenceChangeGoesByIdToCompactStreamsAndAsTheWholeRecordToTheOthers()
    {
        var views = new MapViews();
        var server = Node(3, false, true);
        server.Name = "server";
        views.Reset(new NetMap { Serial = 10, PerNode = true, Peers = { Node(1, true, false), server, Node(4, false, false) } });
        var laptop = views.GrantsOf(views.Find(1));
        var start = new List<SyncResponse>();
        views.FullMapFor(laptop, [], MapForm.Compact, start);
        var agent = new Mesh.Control.NetMapView(SelfKey);
        foreach (var message in start) agent.Apply(Parse(message));
        // The compact map (grants by index, allowed IPs left out) gathers into the records the records form sends.
        var whole = new List<SyncResponse>();
        views.FullMapFor(laptop, [], MapForm.Records, whole);
        Assert.Equal(Parse(Assert.Single(whole)).Full.Peers.OrderBy(p => p.NodeId), agent.Peers.Values.OrderBy(p => p.NodeId));
        Assert.Equal([Rule], agent.Peers[3].PolicyTargets);

        var presence = new PeerPresence { NodeId = 3, Online = true, Endpoints = new Endpoints { Candidates = { new Candidate { Address = "203.0.113.3:3" } } } };
        var cut = views.Apply(new NetMapDelta { Serial = 11, Presence = { presence } });

        var compact = Parse(views.DeltaFor(laptop, cut, MapForm.Compact)!).Delta;
        Assert.Empty(compact.PeersChanged);
        Assert.Equal(presence, Assert.Single(compact.Presence));
        var records = Parse(views.DeltaFor(laptop, cut, MapForm.Records)!).Delta;
        Assert.Empty(records.Presence);
        var record = Assert.Single(records.PeersChanged);
        Assert.Equal(("server", true, "203.0.113.3:3"), (record.Name, record.Online, record.Endpoints.Candidates[0].Address));
        // Node 4 is in no rule: the change is none of its business.
        Assert.Null(views.DeltaFor(views.GrantsOf(views.Find(4)), cut, MapForm.Compact));

        // The agent keeps the rest of the record and takes the new presence.
        Assert.True(agent.Apply(Parse(views.DeltaFor(laptop, cut, MapForm.Compact)!)));
        Assert.Equal(("server", true, "203.0.113.3:3"), (agent.Peers[3].Name, agent.Peers[3].Online, agent.Peers[3].Endpoints.Candidates[0].Address));
        Assert.Same(agent.Peers[3], Assert.Single(agent.LastChange.Upserted));
    }

    [Fact]
    public void ACompactMapOfManyKindsOfNodeKeepsItsPartsBoundedAndGathersIntoTheRecords()
    {
        var views = new MapViews();
        // Every peer a kind of its own: 40 tokens each, so the grant sets alone are several parts' worth.
        var peers = Enumerable.Range(1, 400).Select(i =>
        {
            var peer = Node((ulong)i, false, true);
            peer.PolicyTargets.AddRange(Enumerable.Range(0, 40).Select(t => (ulong)(i * 1000 + t)));
            return peer;
        }).ToList();
        var source = Node(1000, true, false);
        views.Reset(new NetMap { Serial = 3, PerNode = true, Peers = { peers, source } });
        var grants = views.GrantsOf(views.Find(1000));
        var parts = new List<SyncResponse>();
        views.FullMapFor(grants, ["192.0.2.1:3478"], MapForm.Compact, parts);
        Assert.True(parts.Count > 3);
        foreach (var part in parts) Assert.InRange(Transport.ServiceDefinitions.WireBytes(part).Length, 1, MapViews.MaxPartBytes);

        var agent = new Mesh.Control.NetMapView(SelfKey);
        foreach (var part in parts) agent.Apply(Parse(part));
        var whole = new List<SyncResponse>();
        views.FullMapFor(grants, ["192.0.2.1:3478"], MapForm.Records, whole);
        var records = Parse(Assert.Single(whole)).Full.Peers.OrderBy(p => p.NodeId).ToList();
        Assert.Equal(400, records.Count);
        Assert.Equal(records, agent.Peers.Values.OrderBy(p => p.NodeId));
    }

    /// <summary>A policy edit changes peers' grants alone: compact streams get them by id with the grants by index; a peer a kind did not see comes whole.</summary>
    [Fact]
    public void APeerWhoseGrantsAloneChangedGoesByIdWithItsGrantsByIndex()
    {
        const ulong Other = 9;
        var views = new MapViews();
        views.Reset(new NetMap { Serial = 20, PerNode = true, Peers = { Node(1, true, false), Node(2, false, true), Node(3, false, true) } });
        // 4 is a source of the other rule only: it sees nobody until 2 and 3 become its targets too.
        var before = Node(4, false, false);
        before.PolicySources.Add(Other);
        views.Apply(new NetMapDelta { Serial = 21, PeersChanged = { before } });
        var laptop = views.GrantsOf(views.Find(1));
        var agent = new Mesh.Control.NetMapView(SelfKey);
        var start = new List<SyncResponse>();
        views.FullMapFor(laptop, [], MapForm.Compact, start);
        foreach (var message in start) agent.Apply(Parse(message));

        var regranted = new List<Peer>();
        foreach (var id in new ulong[] { 2, 3 })
        {
            var peer = Node(id, false, true);
            peer.PolicyTargets.Add(Other);
            regranted.Add(peer);
        }
        var cut = views.Apply(new NetMapDelta { Serial = 22, PeersChanged = { regranted } });

        var compact = Parse(views.DeltaFor(laptop, cut, MapForm.Compact)!).Delta;
        Assert.Empty(compact.PeersChanged);
        Assert.Equal([2UL, 3UL], compact.GrantsChanged.Select(g => g.NodeId));
        Assert.Equal(new ulong[] { Rule, Other }, Assert.Single(compact.GrantSets).Targets);
        Assert.Equal(2, Parse(views.DeltaFor(laptop, cut, MapForm.Records)!).Delta.PeersChanged.Count);
        // Node 4 did not see them before: it gets their whole records.
        var newcomer = Parse(views.DeltaFor(views.GrantsOf(views.Find(4)), cut, MapForm.Compact)!).Delta;
        Assert.Equal([2UL, 3UL], newcomer.PeersChanged.Select(p => p.NodeId));
        Assert.Empty(newcomer.GrantsChanged);

        Assert.True(agent.Apply(Parse(views.DeltaFor(laptop, cut, MapForm.Compact)!)));
        Assert.Equal(new ulong[] { Rule, Other }, agent.Peers[3].PolicyTargets);
        Assert.Equal(regranted[1].Endpoints, agent.Peers[3].Endpoints);
        Assert.Equal(2, agent.LastChange.Upserted.Count);
    }
}
