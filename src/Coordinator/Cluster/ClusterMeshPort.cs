using Mesh.Coordinator.Control;
using Mesh.Coordinator.Store;
using Mesh.Coordinator.Sync;
using Mesh.Protos.V1;
using Google.Protobuf;

namespace Mesh.Coordinator.Cluster;

/// <summary>A replica's hub in a silo: the registry and publisher are grains, and the publisher reaches the hub through an observer.</summary>
internal sealed class ClusterMeshPort(IGrainFactory grains) : IMeshPort
{
    private readonly object _lock = new();
    private HubObserver? _observer;
    private IHubObserver? _reference;

    private IRegistryGrain Registry => grains.GetGrain<IRegistryGrain>(0);
    private IPublisherGrain Publisher => grains.GetGrain<IPublisherGrain>(0);

    public Task<Result<NodeRecord>> AuthenticateAsync(string sessionToken) => Registry.Authenticate(sessionToken);

    public Task<SessionStart> AttachAsync(string hubId, IHubLink link, Relay? relay, IReadOnlyList<OpenStream> streams)
    {
        IHubObserver reference;
        lock (_lock)
        {
            // Orleans holds observers weakly: this port keeps the object alive for as long as the hub lives.
            if (_observer is null || _observer.Link != link)
            {
                _observer = new HubObserver(link);
                _reference = grains.CreateObjectReference<IHubObserver>(_observer);
            }
            reference = _reference!;
        }
        return Publisher.Attach(hubId, reference, relay?.ToByteArray(), streams.ToList());
    }

    public Task<Result<SessionStart>> OpenSessionAsync(string hubId, NodeRecord node, byte[] endpoints, ulong lastSerial) =>
        Publisher.OpenSession(hubId, node, endpoints, lastSerial);

    public void UpdateEndpoints(long nodeId, string hubId, byte[] endpoints) => Publisher.UpdateEndpoints(nodeId, hubId, endpoints);

    public void CloseSession(long nodeId, string hubId, DateTime now) => Publisher.CloseSession(nodeId, hubId, now);

    public Task<bool> RequestConnectionAsync(long fromNodeId, byte[] peerKey) => Publisher.RequestConnection(fromNodeId, peerKey);

    private sealed class HubObserver(IHubLink link) : IHubObserver
    {
        public IHubLink Link { get; } = link;

        public void Publish(byte[] message) => Link.Publish(message);

        public void Connect(long nodeId, byte[] message) => Link.Connect(nodeId, message);

        public void EndSession(long nodeId, Problem reason) => Link.EndSession(nodeId, reason);
    }
}
