using Mesh.Coordinator.Control;
using Mesh.Coordinator.Store;
using Mesh.Protos.V1;
using Google.Protobuf;
using Mesh.WireGuard.Keys;
using Microsoft.Extensions.Time.Testing;

namespace Mesh.Coordinator.Tests;

/// <summary>
/// The netmap publisher alone: a deleted node stays deleted whatever older record of it comes back (a hub's report of
/// the node's stream still open, a stream that opened as it was deleted, an update that overtook the delete).
/// </summary>
public sealed class NetmapPublisherTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-12-04T12:00:00Z"));

    private sealed class NoPresence : IPresenceSink
    {
        public void NodeOnline(long nodeId) { }
        public void NodeOffline(long nodeId, DateTime at) { }
    }

    private sealed class NoHub : IHubLink
    {
        public void Publish(byte[] message) { }
        public void Connect(long nodeId, byte[] message) { }
        public void EndSession(long nodeId, Problem reason) { }
    }

    /// <summary>The publisher's batch window, run when the test says.</summary>
    private sealed class Batches : IWorkScheduler
    {
        private readonly List<Func<Task>> _due = new();

        /// <summary>How long after being scheduled each batch was due.</summary>
        public List<TimeSpan> Delays { get; } = new();

        public IDisposable Schedule(TimeSpan due, Func<Task> work)
        {
            Delays.Add(due);
            _due.Add(work);
            return new CancellationTokenSource();
        }

        public void RunAll()
        {
            var due = _due.ToList();
            _due.Clear();
            foreach (var work in due) work().GetAwaiter().GetResult();
        }
    }

    private static NodeRecord Node(long id, string name)
    {
        using var key = PrivateKey.Generate();
        return new NodeRecord
        {
            Id = id,
            NodeKey = key.PublicKey.Span.ToArray(),
            Name = name,
            Ipv4 = $"100.64.0.{id}",
            Ipv6 = $"fd7a:115c:a1e0::{id}",
            State = NodeState.Approved,
        };
    }

    [Fact]
    public void ADeletedNodeIsNotTakenBackFromAHubsReportOrALateUpdate()
    {
        var x = Node(1, "x");
        var y = Node(2, "y");
        var batches = new Batches();
        var publisher = new NetmapPublisher(new MeshOptions(), [x, y], [], null, new NoPresence(), batches, _time);
        var endpoints = new Endpoints().ToByteArray();
        publisher.AttachHub("h1", new NoHub(), null, []);
        Assert.True(publisher.OpenSession("h1", x, endpoints, 0).Ok);

        publisher.NodeDeleted(x.Id);
        publisher.AttachHub("h1", new NoHub(), null, [new OpenStream(x, endpoints)]);
        publisher.NodeUpdated(x with { Name = "x-renamed" });
        Assert.False(publisher.OpenSession("h1", x, endpoints, 0).Ok);
        batches.RunAll();

        Assert.Equal([y.Id], publisher.Presence().Select(p => p.NodeId));
        // What a hub attaching now gives its streams: the map and the deltas since, as an agent applies them.
        var start = publisher.CurrentMap();
        var view = new Mesh.Control.NetMapView(ByteString.CopyFrom(y.NodeKey));
        view.Apply(SyncResponse.Parser.ParseFrom(start.FullMap));
        foreach (var delta in start.Deltas) view.Apply(SyncResponse.Parser.ParseFrom(delta));
        Assert.Null(view.FindPeer(ByteString.CopyFrom(x.NodeKey)));

        // Long after, the id is forgotten (ids are never reused; nothing older is still in flight).
        _time.Advance(TimeSpan.FromMinutes(11));
        publisher.NodeUpdated(Node(3, "z"));
        Assert.Equal([y.Id, 3L], publisher.Presence().Select(p => p.NodeId).Order());
    }

    /// <summary>A hub that keeps what it is sent.</summary>
    private sealed class RecordingHub : IHubLink
    {
        public List<NetMapDelta> Deltas { get; } = new();
        public void Publish(byte[] message) => Deltas.Add(SyncResponse.Parser.ParseFrom(message).Delta);
        public void Connect(long nodeId, byte[] message) { }
        public void EndSession(long nodeId, Problem reason) { }
    }

    [Fact]
    public void AChangeOfPresenceGoesOutByIdAndANewOrChangedRecordWhole()
    {
        var x = Node(1, "x");
        var batches = new Batches();
        var hub = new RecordingHub();
        var publisher = new NetmapPublisher(new MeshOptions(), [x], [], null, new NoPresence(), batches, _time);
        publisher.AttachHub("h1", hub, null, []);
        var endpoints = new Endpoints { Candidates = { new Candidate { Address = "198.51.100.1:1" } } }.ToByteArray();

        Assert.True(publisher.OpenSession("h1", x, endpoints, 0).Ok);
        batches.RunAll();
        var online = Assert.Single(hub.Deltas[^1].Presence);
        Assert.Empty(hub.Deltas[^1].PeersChanged);
        Assert.Equal((1UL, true, "198.51.100.1:1"), (online.NodeId, online.Online, online.Endpoints.Candidates[0].Address));

        publisher.NodeUpdated(x with { Name = "x2" });
        publisher.NodeUpdated(Node(2, "y"));
        batches.RunAll();
        Assert.Equal(["x2", "y"], hub.Deltas[^1].PeersChanged.Select(p => p.Name).Order());
        Assert.Empty(hub.Deltas[^1].Presence);

        publisher.CloseSession(x.Id, "h1", _time.GetUtcNow().UtcDateTime);
        batches.RunAll();
        var offline = Assert.Single(hub.Deltas[^1].Presence);
        Assert.Equal((false, _time.GetUtcNow().UtcDateTime), (offline.Online, offline.LastSeen.ToDateTime()));
    }

    [Fact]
    public void AStormOfChangesGoesOutInDeltasAtTheSteadyRateAfterABurst()
    {
        var x = Node(1, "x");
        var batches = new Batches();
        var options = new MeshOptions { DeltaBurst = 2, DeltasPerSecond = 5 };
        var publisher = new NetmapPublisher(options, [x], [], null, new NoPresence(), batches, _time);
        publisher.AttachHub("h1", new RecordingHub(), null, []);
        Assert.True(publisher.OpenSession("h1", x, new Endpoints().ToByteArray(), 0).Ok);
        batches.RunAll();
        for (var i = 0; i < 3; i++)
        {
            publisher.UpdateEndpoints(x.Id, "h1", new Endpoints { Candidates = { new Candidate { Address = $"198.51.100.1:{i + 1}" } } }.ToByteArray());
            batches.RunAll();
        }
        // The burst of two after the batch window, then one every 200 ms.
        Assert.Equal([options.ChangeBatchWindow, options.ChangeBatchWindow, TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(200)], batches.Delays);

        // After a quiet spell, a change goes out after the batch window again.
        _time.Advance(TimeSpan.FromSeconds(1));
        publisher.UpdateEndpoints(x.Id, "h1", new Endpoints().ToByteArray());
        Assert.Equal(options.ChangeBatchWindow, batches.Delays[^1]);
    }
}
