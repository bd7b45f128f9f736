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
/// map (a delta that removes the node, or the full map of the next attach) ends the stream all the same.
/// </summary>
public sealed class LostMessageTests
{
    /// <summary>The publisher's side as a hub sees it, with the end-of-session message never sent.</summary>
    private sealed class Mesh(NodeRecord node) : IMeshPort
    {
        public bool NodeInMap = true;

        public Task<Result<NodeRecord>> AuthenticateAsync(string sessionToken) => Task.FromResult<Result<NodeRecord>>(node);

        public Task<SessionStart> AttachAsync(string hubId, IHubLink link, Relay? relay, IReadOnlyList<OpenStream> streams) =>
            Task.FromResult(new SessionStart(Map(), [], 1));

        public Task<Result<SessionStart>> OpenSessionAsync(string hubId, NodeRecord record, byte[] endpoints, ulong lastSerial) =>
            Task.FromResult<Result<SessionStart>>(new SessionStart(Map(), [], 1));

        public void UpdateEndpoints(long nodeId, string hubId, byte[] endpoints) { }

        public void CloseSession(long nodeId, string hubId, DateTime now) { }

        public Task<bool> RequestConnectionAsync(long fromNodeId, byte[] peerKey) => Task.FromResult(false);

        private byte[] Map()
        {
            var map = new NetMap { Serial = 1 };
            if (NodeInMap) map.Peers.Add(new Peer { NodeId = (ulong)node.Id, NodeKey = ByteString.CopyFrom(node.NodeKey), Name = node.Name });
            return new SyncResponse { Full = map }.ToByteArray();
        }
    }

    private static async Task<(SyncHub Hub, SyncSession Session, Mesh Mesh)> OpenAsync()
    {
        using var key = PrivateKey.Generate();
        var node = new NodeRecord { Id = 7, NodeKey = key.PublicKey.Span.ToArray(), Name = "n", Ipv4 = "100.64.0.7", Ipv6 = "fd00::7", State = NodeState.Approved };
        var mesh = new Mesh(node);
        var hub = new SyncHub("hub", mesh, TimeProvider.System, NullLogger.Instance);
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
