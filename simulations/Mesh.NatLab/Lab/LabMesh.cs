using Mesh.Coordinator.Api;
using Mesh.Coordinator.Control;
using Mesh.Coordinator.Store;
using Mesh.Coordinator.Sync;
using Mesh.NatLab.Sim;
using Mesh.Protos.V1;
using Mesh.WireGuard.Keys;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.NatLab.Lab;

/// <summary>
/// The coordinator's production domain (node registry, key ring, netmap publisher and one replica's hub) wired
/// together in one thread on virtual time, where a silo would wire them through grains. Every store call returns
/// at once (SQLite), so the asynchronous domain methods complete before they return.
/// </summary>
public sealed class LabMesh : IKeyService, INetmapSink, IPresenceSink, IMeshPort, IRegistrar
{
    private NodeRegistry _registry = null!;
    private NetmapPublisher _publisher = null!;

    private LabMesh()
    {
    }

    public KeyRing Keys { get; private set; } = null!;
    public CoordinatorIdentity Identity { get; private set; } = null!;
    public SyncHub Hub { get; private set; } = null!;
    public NodeRegistry Registry => _registry;

    public static LabMesh Start(ICoordinatorStore store, Scheduler scheduler, Func<CoordinatorIdentity, Relay> relayOf)
    {
        var time = new LabTimeProvider(scheduler);
        var work = new LabWorkScheduler(scheduler);
        var options = new MeshOptions();
        var mesh = new LabMesh();
        mesh.Identity = Completed(CoordinatorIdentity.LoadAsync(store, options));
        mesh.Keys = Completed(KeyRing.LoadAsync(store));
        mesh._registry = Completed(NodeRegistry.LoadAsync(store, options, mesh.Identity, mesh, mesh, work, time, NullLogger.Instance));
        mesh._publisher = new NetmapPublisher(options with { Ipv6Prefix = mesh.Identity.Ipv6Prefix }, mesh._registry.List(), [], null, mesh, work, time);
        mesh.Hub = new SyncHub("lab", mesh, time, NullLogger.Instance, synchronousSends: true);
        Completed(mesh.Hub.StartAsync(relayOf(mesh.Identity)));
        return mesh;
    }

    /// <summary>The result of a domain call that, in the lab, always finished before it returned.</summary>
    public static T Completed<T>(Task<T> task) =>
        task.IsCompleted ? task.GetAwaiter().GetResult() : throw new InvalidOperationException("A lab call to the coordinator did not complete at once.");

    private static void Completed(Task task)
    {
        if (!task.IsCompleted) throw new InvalidOperationException("A lab call to the coordinator did not complete at once.");
        task.GetAwaiter().GetResult();
    }


    Task<Result<Registration>> IRegistrar.RegisterAsync(RegistrationRequest request) => _registry.RegisterAsync(request);

    Task<Result<KeyGrant>> IKeyService.UseAsync(string secret, DateTime now) => Keys.UseAsync(secret, now);

    Task IKeyService.ReleaseAsync(string keyId) => Keys.ReleaseAsync(keyId);

    void INetmapSink.NodeUpdated(NodeRecord record) => _publisher.NodeUpdated(record);

    void INetmapSink.NodeDeleted(long nodeId) => _publisher.NodeDeleted(nodeId);

    void INetmapSink.EndSession(long nodeId, Problem reason) => _publisher.EndSession(nodeId, reason);

    void IPresenceSink.NodeOnline(long nodeId) => _registry.NodeOnline(nodeId);

    void IPresenceSink.NodeOffline(long nodeId, DateTime at) => Completed(_registry.NodeOfflineAsync(nodeId, at));

    Task<Result<NodeRecord>> IMeshPort.AuthenticateAsync(string sessionToken) => Task.FromResult(_registry.Authenticate(sessionToken));

    Task<SessionStart> IMeshPort.AttachAsync(string hubId, IHubLink link, Relay? relay, IReadOnlyList<OpenStream> streams)
    {
        _publisher.AttachHub(hubId, link, relay, streams);
        return Task.FromResult(_publisher.CurrentMap());
    }

    Task<Result<SessionStart>> IMeshPort.OpenSessionAsync(string hubId, NodeRecord node, byte[] endpoints, ulong lastSerial) =>
        Task.FromResult(_publisher.OpenSession(hubId, node, endpoints, lastSerial));

    void IMeshPort.UpdateEndpoints(long nodeId, string hubId, byte[] endpoints) => _publisher.UpdateEndpoints(nodeId, hubId, endpoints);

    void IMeshPort.CloseSession(long nodeId, string hubId, DateTime now) => _publisher.CloseSession(nodeId, hubId, now);

    Task<bool> IMeshPort.RequestConnectionAsync(long fromNodeId, byte[] peerKey) => Task.FromResult(_publisher.RequestConnection(fromNodeId, new PublicKey(peerKey)));

    /// <summary>Domain timers (ephemeral removal, the publisher's batch window) as scheduler events.</summary>
    private sealed class LabWorkScheduler(Scheduler scheduler) : IWorkScheduler
    {
        public IDisposable Schedule(TimeSpan due, Func<Task> work)
        {
            var timer = new Cancellable();
            scheduler.After(due, () =>
            {
                if (!timer.Cancelled) Completed(work());
            });
            return timer;
        }

        private sealed class Cancellable : IDisposable
        {
            public bool Cancelled { get; private set; }

            public void Dispose() => Cancelled = true;
        }
    }
}
