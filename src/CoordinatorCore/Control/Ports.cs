using Mesh.Coordinator.Store;

namespace Mesh.Coordinator.Control;

/// <summary>What the node registry needs of the key ring; a grain call in a silo, a direct call in the NAT lab.</summary>
public interface IKeyService
{
    Task<Result<KeyGrant>> UseAsync(string secret, DateTime now);

    Task ReleaseAsync(string keyId);
}

/// <summary>Where the node registry sends what changed: the netmap publisher. Notifications only, never awaited for an answer.</summary>
public interface INetmapSink
{
    /// <summary>A node's record changed; approved nodes are in the netmap, others leave it.</summary>
    void NodeUpdated(NodeRecord record);

    void NodeDeleted(long nodeId);

    /// <summary>The node's sync stream (wherever it is) ends with this refusal: expired, deleted, replaced.</summary>
    void EndSession(long nodeId, Problem reason);
}

/// <summary>Where the netmap publisher tells the registry of a node's presence, for last-seen times and ephemeral nodes.</summary>
public interface IPresenceSink
{
    void NodeOnline(long nodeId);

    void NodeOffline(long nodeId, DateTime at);
}

/// <summary>Runs work later on its owner's own thread of control (a grain timer in a silo, the NAT lab's scheduler).</summary>
public interface IWorkScheduler
{
    /// <summary>Runs <paramref name="work"/> once after <paramref name="due"/>; dispose the result to cancel.</summary>
    IDisposable Schedule(TimeSpan due, Func<Task> work);
}
