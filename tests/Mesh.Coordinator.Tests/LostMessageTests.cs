using Google.Protobuf;
using Mesh.Coordinator.Control;
using Mesh.Coordinator.Store;
using Mesh.Coordinator.Sync;
using Mesh.Protos.V1;
using Mesh.WireGuard.Keys;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.Coordinator.Tests;

/// <summary>
/// A revocation must not rest on one message: when the "end this stream" message to a replica's hub is lost, the
/// map (a delta that removes the node, or the full map of the next attach) ends the stream all the same. And
/// messages that race a stream's start reach the agent in an order it can use.
/// </summary>
public sealed class LostMessageTests
{
    [Fact]
    public async Task ADeltaThatRemovesTheNodeEndsItsStream()
    {
        var (hub, session, _) = await FakeMeshPort.OpenAsync();
        hub.Publish(new SyncResponse { Delta = new NetMapDelta { Serial = 2, PeersRemoved = { 7 } } }.ToByteArray());
        Assert.Equal(Failure.Unauthenticated, session.CloseReason?.Kind);
        Assert.Equal(0, hub.Count);
    }

    /// <summary>
    /// The publisher marks a node online while its stream opens, and a peer that sees it may ask it to connect at
    /// once: that notice must follow the full map, or the agent drops it as coming from a peer it does not know.
    /// </summary>
    [Fact]
    public async Task AConnectNoticeThatRacesTheStreamsStartFollowsTheFullMap()
    {
        var notice = new SyncResponse { Connect = new ConnectNotice { PeerKey = ByteString.CopyFrom(new byte[32]) } };
        var (_, session, _) = await FakeMeshPort.OpenAsync(hub => hub.Connect(7, notice.ToByteArray()));
        var kinds = Drain(session).Select(m => SyncResponse.Parser.ParseFrom(Transport.ServiceDefinitions.WireBytes(m)).KindCase).ToList();
        Assert.Equal([SyncResponse.KindOneofCase.Full, SyncResponse.KindOneofCase.Connect], kinds);
    }

    private static byte[] Delta(ulong serial, string name) =>
        new SyncResponse { Delta = new NetMapDelta { Serial = serial, PeersChanged = { new Peer { NodeId = 100 + serial, NodeKey = ByteString.CopyFrom(new byte[32]), Name = name } } } }.ToByteArray();

    private static SyncResponse Parse(SyncResponse handle) => SyncResponse.Parser.ParseFrom(Transport.ServiceDefinitions.WireBytes(handle));

    private static List<SyncResponse> Drain(SyncSession session)
    {
        var messages = new List<SyncResponse>();
        while (session.Outbound.TryRead(out var message)) messages.Add(message);
        return messages;
    }

    /// <summary>What the stream will carry: the serial of each message (a full map's or a delta's).</summary>
    private static List<ulong> Serials(SyncSession session)
    {
        var serials = new List<ulong>();
        while (session.Outbound.TryRead(out var handle))
        {
            var message = SyncResponse.Parser.ParseFrom(Transport.ServiceDefinitions.WireBytes(handle));
            serials.Add(message.KindCase == SyncResponse.KindOneofCase.Full ? message.Full.Serial : message.Delta.Serial);
        }
        return serials;
    }

    /// <summary>
    /// A policy came while the hub attached: the attach's map at the hub's own serial is per-node already, and the
    /// delta that says so may come later or never. The stream on the shared map gets its slice and its own record
    /// then, not a cut of the next delta on top of the shared map it holds (its agent would enforce nothing).
    /// </summary>
    [Fact]
    public async Task AStreamOnTheSharedMapGetsItsSliceWhenAnAttachFindsAPolicy()
    {
        var (hub, session, mesh) = await FakeMeshPort.OpenAsync();
        Assert.False(SyncResponse.Parser.ParseFrom(Transport.ServiceDefinitions.WireBytes(Drain(session).Single())).Full.PerNode);
        mesh.PerNode = true;
        await hub.AttachAsync();
        var messages = Drain(session).Select(m => SyncResponse.Parser.ParseFrom(Transport.ServiceDefinitions.WireBytes(m))).ToList();
        Assert.Equal([SyncResponse.KindOneofCase.Full, SyncResponse.KindOneofCase.Self], messages.Select(m => m.KindCase));
        Assert.True(messages[0].Full.PerNode);
        hub.Publish(Delta(2, "after"));
        Assert.All(Drain(session), m => Assert.NotEqual(SyncResponse.KindOneofCase.Full, SyncResponse.Parser.ParseFrom(Transport.ServiceDefinitions.WireBytes(m)).KindCase));
    }

    /// <summary>
    /// With per-node maps, a hub that missed a delta of the same publisher gives its streams the cut of that delta at
    /// the next attach, not a new map each (one-way messages overtake each other under load, and a new map for every
    /// stream at each catch-up was gigabytes at 10,000 streams).
    /// </summary>
    [Fact]
    public async Task APerNodeHubCatchesItsStreamsUpWithTheDeltasTheyMissedNotNewMaps()
    {
        var (hub, session, mesh) = await FakeMeshPort.OpenAsync(made: m => m.PerNode = true);
        Assert.Equal([SyncResponse.KindOneofCase.Full, SyncResponse.KindOneofCase.Self], Drain(session).Select(Kind));
        mesh.Since.Add(Delta(2, "delivered"));
        mesh.Since.Add(Delta(3, "lost"));
        hub.Publish(Delta(2, "delivered"));
        Drain(session);
        await hub.AttachAsync();
        // Node 7 sees nobody (it has no grants), so the cut of delta 3 is empty and nothing at all is sent.
        Assert.Empty(Drain(session));
        hub.Publish(Delta(4, "next"));
        Assert.Empty(Drain(session));
    }

    private static SyncResponse.KindOneofCase Kind(SyncResponse handle) => SyncResponse.Parser.ParseFrom(Transport.ServiceDefinitions.WireBytes(handle)).KindCase;

    [Theory]
    [InlineData(MapForm.Records)]
    [InlineData(MapForm.Compact)]
    public async Task TheNextAttachBringsTheStreamsTheDeltasTheHubMissed(MapForm form)
    {
        var (hub, session, mesh) = await FakeMeshPort.OpenAsync(form: form);
        Serials(session);
        mesh.Since.Add(Delta(2, "delivered"));
        mesh.Since.Add(Delta(3, "lost"));
        hub.Publish(Delta(2, "delivered"));
        Assert.Equal([2UL], Serials(session));
        // Serial 3 never came to this hub (a one-way message lost): the next attach brings it, and only it.
        await hub.AttachAsync();
        Assert.Equal([3UL], Serials(session));
        hub.Publish(Delta(4, "next"));
        Assert.Equal([4UL], Serials(session));
    }

    /// <summary>
    /// One-way messages can overtake each other: a delta that arrives before the one it follows must not move the
    /// hub's serial past the missing one (no attach would bring it then); it starts an attach that brings both in order.
    /// </summary>
    [Theory]
    [InlineData(MapForm.Records)]
    [InlineData(MapForm.Compact)]
    public async Task ADeltaThatOvertakesTheOneBeforeItLosesNeither(MapForm form)
    {
        var (hub, session, mesh) = await FakeMeshPort.OpenAsync(form: form);
        Serials(session);
        mesh.Since.Add(Delta(2, "second"));
        mesh.Since.Add(Delta(3, "third"));
        hub.Publish(Delta(3, "third"));
        var serials = new List<ulong>();
        await Eventually.HoldsAsync(() =>
        {
            serials.AddRange(Serials(session));
            return serials.Count >= 2;
        }, TimeSpan.FromSeconds(10), "the attach brings the missing delta and the one that overtook it");
        hub.Publish(Delta(2, "second"));
        serials.AddRange(Serials(session));
        Assert.Equal([2UL, 3UL], serials);
    }

    /// <summary>The hub's copy is reset to the new publisher's map and the deltas since: its streams start again from it, a map that holds them.</summary>
    [Fact]
    public async Task AHubBehindThePublishersMapGivesItsStreamsTheMapAndTheDeltasSince()
    {
        var (hub, session, mesh) = await FakeMeshPort.OpenAsync();
        Serials(session);
        hub.Publish(Delta(2, "seen"));
        Serials(session);
        // The publisher moved (a new activation): its map (serial 1 here) is not one this hub's serial follows.
        mesh.Epoch = 2;
        mesh.MapSerial = 10;
        mesh.Since.Add(Delta(11, "after the move"));
        await hub.AttachAsync();
        var map = Parse(Drain(session).Single()).Full;
        Assert.Equal(11UL, map.Serial);
        Assert.Contains(map.Peers, p => p.Name == "after the move");
    }

    /// <summary>
    /// A replica whose clock is behind took the publisher over: its serials are lower than the hub's. The hub takes
    /// its map for a fresh start and follows its deltas, rather than dropping them all as already seen.
    /// </summary>
    [Fact]
    public async Task APublisherWhoseSerialsAreLowerThanTheHubsStillReachesItsStreams()
    {
        var (hub, session, mesh) = await FakeMeshPort.OpenAsync();
        hub.Publish(Delta(2, "before the move"));
        hub.Publish(Delta(3, "before the move"));
        Serials(session);
        mesh.Epoch = 2;
        mesh.MapSerial = 1;
        await hub.AttachAsync();
        hub.Publish(Delta(2, "the new publisher's first"));
        Assert.Equal([1UL, 2UL], Serials(session));
    }

    /// <summary>An attach whose map is older than a delta the hub already applied leaves that delta's peers members (of the relay).</summary>
    [Fact]
    public async Task AnAttachBehindTheHubKeepsThePeersOfItsNewerDeltas()
    {
        var (hub, _, _) = await FakeMeshPort.OpenAsync();
        hub.Publish(Delta(2, "joined after the publisher's map"));
        var joined = new PublicKey(new byte[32]);
        Assert.True(hub.IsMember(joined));
        await hub.AttachAsync();
        Assert.True(hub.IsMember(joined));
    }

    /// <summary>A stream that is still starting when the hub catches up starts from the hub's copy, which holds the deltas the catch-up brought.</summary>
    [Fact]
    public async Task AStreamThatStartsWhileTheHubCatchesUpGetsTheDeltasItMissed()
    {
        FakeMeshPort? publisher = null;
        var (_, session, _) = await FakeMeshPort.OpenAsync(hub =>
        {
            publisher!.Since.Add(Delta(2, "caught up"));
            publisher.Since.Add(Delta(3, "caught up"));
            hub.AttachAsync().GetAwaiter().GetResult();
        }, mesh => publisher = mesh);
        var map = Parse(Drain(session).Single()).Full;
        Assert.Equal(3UL, map.Serial);
        Assert.Equal([102UL, 103UL], map.Peers.Where(p => p.Name == "caught up").Select(p => p.NodeId).Order());
    }

    /// <summary>A stream whose start fails (the publisher's call times out) leaves nothing behind: no early messages piling up, nothing an attach would report open.</summary>
    [Fact]
    public async Task AStreamWhoseStartFailsIsForgotten()
    {
        var (hub, session, mesh) = await FakeMeshPort.OpenAsync();
        mesh.OpenFails = new TimeoutException("the publisher did not answer");
        await Assert.ThrowsAsync<TimeoutException>(() => hub.OpenAsync("token", new PublicKey(session.Node.NodeKey), new SyncHello(), ["192.0.2.1:3478"]));
        Assert.Equal(0, hub.Count);
    }

    /// <summary>A delta of the publisher the hub followed is not in the serials of another one that started the stream: it is not sent.</summary>
    [Fact]
    public async Task AnEarlyDeltaOfAnotherPublisherIsNotSentAfterTheStart()
    {
        FakeMeshPort? publisher = null;
        var (_, session, _) = await FakeMeshPort.OpenAsync(hub =>
        {
            hub.Publish(Delta(2, "the old publisher's"));
            publisher!.Epoch = 2;
            publisher.MapSerial = 0;
        }, mesh => (publisher = mesh).Resumes = true, form: MapForm.Compact);
        Assert.Empty(Serials(session));
    }

    /// <summary>An attach asked for while one is under way may wait for something after that one's map: it gets one more attach, not a share of the first.</summary>
    [Fact]
    public async Task AnAttachAskedForDuringAnotherOneIsMadeAfterIt()
    {
        var (hub, session, mesh) = await FakeMeshPort.OpenAsync();
        Serials(session);
        mesh.AttachGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = hub.AttachAsync();
        mesh.Since.Add(Delta(2, "after the first attach's map"));
        var second = hub.AttachAsync();
        mesh.AttachGate.SetResult();
        mesh.AttachGate = null;
        await Task.WhenAll(first, second);
        Assert.Equal([2UL], Serials(session));
    }

    [Fact]
    public async Task TheNextAttachEndsTheStreamOfANodeTheMapNoLongerHolds()
    {
        var (hub, session, mesh) = await FakeMeshPort.OpenAsync();
        mesh.NodeInMap = false;
        await hub.AttachAsync();
        Assert.Equal(Failure.Unauthenticated, session.CloseReason?.Kind);
        Assert.Equal(0, hub.Count);
    }
}
