using Google.Protobuf;
using Mesh.Coordinator.Control;
using Mesh.Coordinator.Store;
using Mesh.Coordinator.Sync;
using Mesh.Protos.V1;
using Mesh.WireGuard.Keys;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.Coordinator.Tests;

/// <summary>The publisher's side as a hub sees it (no end-of-session message is ever sent), and one stream opened through it.</summary>
internal sealed class FakeMeshPort(NodeRecord node) : IMeshPort
{
    public bool NodeInMap = true;

    /// <summary>The publisher's maps are per-node (a policy is set).</summary>
    public bool PerNode;

    /// <summary>The deltas the publisher made since its map (serial 1), which the next attach returns.</summary>
    public readonly List<byte[]> Since = new();

    public Task<Result<NodeRecord>> AuthenticateAsync(string sessionToken) => Task.FromResult<Result<NodeRecord>>(node);

    /// <summary>The serial of the publisher's full map.</summary>
    public ulong MapSerial = 1;

    /// <summary>The publisher's activation: another one numbers its serials apart.</summary>
    public ulong Epoch = 1;

    /// <summary>While set, an attach takes the publisher's map at once and returns it when this completes.</summary>
    public TaskCompletionSource? AttachGate;

    public async Task<SessionStart> AttachAsync(string hubId, IHubLink link, Relay? relay, IReadOnlyList<OpenStream> streams)
    {
        var start = new SessionStart(Map(), Since.ToList(), MapSerial + (ulong)Since.Count, Epoch);
        if (AttachGate is { } gate) await gate.Task;
        return start;
    }

    /// <summary>What happens at the publisher while it opens the session (a peer's connect request, say).</summary>
    public Action? WhileOpening;

    /// <summary>When set, opening a session fails with it (a grain call timing out while a replica dies).</summary>
    public Exception? OpenFails;

    /// <summary>The agent resumes: the start brings the deltas since the map (<see cref="Since"/>), and no map.</summary>
    public bool Resumes;

    public Task<Result<SessionStart>> OpenSessionAsync(string hubId, NodeRecord record, byte[] endpoints, ulong lastSerial)
    {
        WhileOpening?.Invoke();
        if (OpenFails is { } failure) return Task.FromException<Result<SessionStart>>(failure);
        var start = Resumes ? new SessionStart(null, Since.ToList(), MapSerial + (ulong)Since.Count, Epoch, PerNode, Resumes: true) : new SessionStart(null, [], MapSerial, Epoch, PerNode);
        return Task.FromResult<Result<SessionStart>>(start);
    }

    /// <summary>Every endpoint update the hub passed on, as the publisher took it.</summary>
    public readonly List<Endpoints> Updates = new();

    public void UpdateEndpoints(long nodeId, string hubId, byte[] endpoints)
    {
        lock (Updates) Updates.Add(Endpoints.Parser.ParseFrom(endpoints));
    }

    public void CloseSession(long nodeId, string hubId, DateTime now) { }

    public Task<bool> RequestConnectionAsync(long fromNodeId, byte[] peerKey) => Task.FromResult(false);

    private byte[] Map()
    {
        var map = new NetMap { Serial = MapSerial, PerNode = PerNode };
        if (NodeInMap) map.Peers.Add(new Peer { NodeId = (ulong)node.Id, NodeKey = ByteString.CopyFrom(node.NodeKey), Name = node.Name });
        return new SyncResponse { Full = map }.ToByteArray();
    }

    /// <summary>A hub on a fake publisher, attached, with the stream of node 7 open on it, reading the map in this form (whole records by default, as agents before the compact form).</summary>
    public static async Task<(SyncHub Hub, SyncSession Session, FakeMeshPort Mesh)> OpenAsync(Action<SyncHub>? whileOpening = null, Action<FakeMeshPort>? made = null, TimeProvider? time = null,
        MapForm form = MapForm.Records)
    {
        using var key = PrivateKey.Generate();
        var node = new NodeRecord { Id = 7, NodeKey = key.PublicKey.Span.ToArray(), Name = "n", Ipv4 = "100.64.0.7", Ipv6 = "fd00::7", State = NodeState.Approved };
        var mesh = new FakeMeshPort(node);
        made?.Invoke(mesh);
        var hub = new SyncHub("hub", mesh, time ?? TimeProvider.System, NullLogger.Instance);
        if (whileOpening is not null) mesh.WhileOpening = () => whileOpening(hub);
        await hub.AttachAsync();
        var session = (await hub.OpenAsync("token", key.PublicKey, new SyncHello { MapForm = form }, ["192.0.2.1:3478"])).Value!;
        Assert.Null(session.CloseReason);
        return (hub, session, mesh);
    }
}
