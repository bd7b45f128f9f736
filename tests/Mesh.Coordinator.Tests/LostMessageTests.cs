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
    /// <summary>The publisher's side as a hub sees it, with the end-of-session message never sent.</summary>
    private sealed class Mesh(NodeRecord node) : IMeshPort
    {
        public bool NodeInMap = true;

        /// <summary>The deltas the publisher made since its map (serial 1), which the next attach returns.</summary>
        public readonly List<byte[]> Since = new();

        public Task<Result<NodeRecord>> AuthenticateAsync(string sessionToken) => Task.FromResult<Result<NodeRecord>>(node);

        /// <summary>The serial of the publisher's full map.</summary>
        public ulong MapSerial = 1;

        public Task<SessionStart> AttachAsync(string hubId, IHubLink link, Relay? relay, IReadOnlyList<OpenStream> streams) =>
            Task.FromResult(new SessionStart(Map(), Since.ToList(), MapSerial + (ulong)Since.Count));

        /// <summary>What happens at the publisher while it opens the session (a peer's connect request, say).</summary>
        public Action? WhileOpening;

        public Task<Result<SessionStart>> OpenSessionAsync(string hubId, NodeRecord record, byte[] endpoints, ulong lastSerial)
        {
            WhileOpening?.Invoke();
            return Task.FromResult<Result<SessionStart>>(new SessionStart(Map(), [], 1));
        }

        public void UpdateEndpoints(long nodeId, string hubId, byte[] endpoints) { }

        public void CloseSession(long nodeId, string hubId, DateTime now) { }

        public Task<bool> RequestConnectionAsync(long fromNodeId, byte[] peerKey) => Task.FromResult(false);

        private byte[] Map()
        {
            var map = new NetMap { Serial = MapSerial };
            if (NodeInMap) map.Peers.Add(new Peer { NodeId = (ulong)node.Id, NodeKey = ByteString.CopyFrom(node.NodeKey), Name = node.Name });
            return new SyncResponse { Full = map }.ToByteArray();
        }
    }

    private static async Task<(SyncHub Hub, SyncSession Session, Mesh Mesh)> OpenAsync(Action<SyncHub>? whileOpening = null)
    {
        using var key = PrivateKey.Generate();
        var node = new NodeRecord { Id = 7, NodeKey = key.PublicKey.Span.ToArray(), Name = "n", Ipv4 = "100.64.0.7", Ipv6 = "fd00::7", State = NodeState.Approved };
        var mesh = new Mesh(node);
        var hub = new SyncHub("hub", mesh, TimeProvider.System, NullLogger.Instance);
        if (whileOpening is not null) mesh.WhileOpening = () => whileOpening(hub);
        await hub.AttachAsync();
        var session = (await hub.OpenAsync("token", key.PublicKey, new SyncHello(), ["192.0.2.1:3478"])).Value!;
        Assert.Null(session.CloseReason);
        return (hub, session, mesh);
    }

    [Fact]
    public async Task ADeltaThatRemovesTheNodeEndsItsStream()
    {
        var (hub, session, _) = await OpenAsync();
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
        var (_, session, _) = await OpenAsync(hub => hub.Connect(7, notice.ToByteArray()));
        var kinds = Drain(session).Select(m => SyncResponse.Parser.ParseFrom(Transport.ServiceDefinitions.WireBytes(m)).KindCase).ToList();
        Assert.Equal([SyncResponse.KindOneofCase.Full, SyncResponse.KindOneofCase.Connect], kinds);
    }

    private static byte[] Delta(ulong serial, string name) =>
        new SyncResponse { Delta = new NetMapDelta { Serial = serial, PeersChanged = { new Peer { NodeId = 100 + serial, NodeKey = ByteString.CopyFrom(new byte[32]), Name = name } } } }.ToByteArray();

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

    [Fact]
    public async Task TheNextAttachBringsTheStreamsTheDeltasTheHubMissed()
    {
        var (hub, session, mesh) = await OpenAsync();
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
    [Fact]
    public async Task ADeltaThatOvertakesTheOneBeforeItLosesNeither()
    {
        var (hub, session, mesh) = await OpenAsync();
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

    [Fact]
    public async Task AHubBehindThePublishersMapGivesItsStreamsTheMapAndTheDeltasSince()
    {
        var (hub, session, mesh) = await OpenAsync();
        Serials(session);
        hub.Publish(Delta(2, "seen"));
        Serials(session);
        // The publisher moved (a new activation): its map (serial 1 here) is not one this hub's serial follows.
        mesh.MapSerial = 10;
        mesh.Since.Add(Delta(11, "after the move"));
        await hub.AttachAsync();
        Assert.Equal([10UL, 11UL], Serials(session));
    }

    [Fact]
    public async Task TheNextAttachEndsTheStreamOfANodeTheMapNoLongerHolds()
    {
        var (hub, session, mesh) = await OpenAsync();
        mesh.NodeInMap = false;
        await hub.AttachAsync();
        Assert.Equal(Failure.Unauthenticated, session.CloseReason?.Kind);
        Assert.Equal(0, hub.Count);
    }
}
