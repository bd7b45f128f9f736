using Google.Protobuf;
using Mesh.Coordinator.Control;
using Mesh.Coordinator.Policy;
using Mesh.Coordinator.Store;
using Mesh.Protos.V1;
using Mesh.WireGuard.Keys;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;

namespace Mesh.Coordinator.Cluster;

/// <summary>Work later on a grain's own turn: a grain timer that fires once.</summary>
internal sealed class GrainWorkScheduler(Grain grain) : IWorkScheduler
{
    public IDisposable Schedule(TimeSpan due, Func<Task> work) => grain.RegisterGrainTimer(work, new GrainTimerCreationOptions(due, Timeout.InfiniteTimeSpan));
}

/// <summary>The node registry's grain: loads the nodes from the store when it activates, then is their only writer.</summary>
[KeepAlive]
internal sealed class RegistryGrain(ICoordinatorStore store, MeshOptions options, CoordinatorIdentity identity, ILogger<RegistryGrain> logger)
    : Grain, IRegistryGrain, IKeyService, INetmapSink
{
    private NodeRegistry _registry = null!;

    private IKeyRingGrain Keys => GrainFactory.GetGrain<IKeyRingGrain>(0);
    private IPublisherGrain Publisher => GrainFactory.GetGrain<IPublisherGrain>(0);

    public override async Task OnActivateAsync(CancellationToken cancellationToken) =>
        _registry = await NodeRegistry.LoadAsync(store, options, identity, this, this, new GrainWorkScheduler(this), TimeProvider.System, logger);

    public Task<List<Control.PendingNode>> Pending() => Task.FromResult(_registry.Pending());

    public Task<long> AddressCounter() => Task.FromResult(_registry.AddressCounter);

    public Task<Result<Registration>> Register(RegistrationRequest request) => _registry.RegisterAsync(request);

    public Task<Result<NodeRecord>> Authenticate(string sessionToken) => Task.FromResult(_registry.Authenticate(sessionToken));

    public Task<List<NodeRecord>> List() => Task.FromResult(_registry.List());

    public Task<Result<NodeRecord>> Find(string reference) => Task.FromResult(_registry.Find(reference));

    public Task<Result<NodeRecord>> Rename(string reference, string newName) => _registry.RenameAsync(reference, newName);

    public Task<Result<NodeRecord>> Approve(string reference) => _registry.ApproveAsync(reference);

    public Task<Result<NodeRecord>> Expire(string reference) => _registry.ExpireAsync(reference);

    public Task<Result<NodeRecord>> Delete(string reference) => _registry.DeleteAsync(reference);

    public Task<Result<int>> ExpireJoinedWith(string keyId) => _registry.ExpireJoinedWithAsync(keyId);

    public Task NodeOnline(long nodeId)
    {
        _registry.NodeOnline(nodeId);
        return Task.CompletedTask;
    }

    public Task NodeOffline(long nodeId, DateTime at) => _registry.NodeOfflineAsync(nodeId, at);

    public Task<int> Count() => Task.FromResult(_registry.Count);

    public Task<int> CountOwnedBy(long userId) => Task.FromResult(_registry.CountOwnedBy(userId));

    Task<Result<KeyGrant>> IKeyService.UseAsync(string secret, DateTime now) => Keys.Use(secret);

    Task IKeyService.ReleaseAsync(string keyId) => Keys.Release(keyId);

    void INetmapSink.NodeUpdated(NodeRecord record) => Publisher.NodeUpdated(record);

    void INetmapSink.NodeDeleted(long nodeId) => Publisher.NodeDeleted(nodeId);

    void INetmapSink.EndSession(long nodeId, Problem reason) => Publisher.EndSession(nodeId, reason);
}

/// <summary>The key ring's grain: loads the keys from the store when it activates, then is their only writer.</summary>
[KeepAlive]
internal sealed class KeyRingGrain(ICoordinatorStore store) : Grain, IKeyRingGrain
{
    private KeyRing _keys = null!;

    private static DateTime Now => DateTime.UtcNow;

    public override async Task OnActivateAsync(CancellationToken cancellationToken) => _keys = await KeyRing.LoadAsync(store);

    public async Task<Result<UserRecord>> CreateUser(string name) => Named(await _keys.CreateUserAsync(name, Now));

    public Task<List<UserRecord>> ListUsers() => Task.FromResult(_keys.ListUsers());

    public async Task<Result<UserRecord>> RenameUser(string name, string newName) => Named(await _keys.RenameUserAsync(name, newName));

    /// <summary>The publisher learns a user's (new) name: the policy names users, the store's nodes only their ids.</summary>
    private Result<UserRecord> Named(Result<UserRecord> user)
    {
        if (user.Ok) GrainFactory.GetGrain<IPublisherGrain>(0).UserNamed(user.Value!.Id, user.Value.Name);
        return user;
    }

    public Task<Result<UserRecord>> DeleteUser(string name, int nodesOwned) => _keys.DeleteUserAsync(name, nodesOwned);

    public Task<UserRecord?> FindUser(string name) => Task.FromResult(_keys.FindUser(name));

    public Task<Result<(PreAuthKeyRecord Key, string Secret)>> CreatePreAuthKey(bool reusable, bool ephemeral, TimeSpan? expiration, IReadOnlyList<string> tags, string? user) =>
        _keys.CreatePreAuthKeyAsync(reusable, ephemeral, expiration, tags, user, Now);

    public Task<List<PreAuthKeyRecord>> ListPreAuthKeys() => Task.FromResult(_keys.ListPreAuthKeys());

    public Task<Result<KeyGrant>> Use(string secret) => _keys.UseAsync(secret, Now);

    public Task Release(string keyId) => _keys.ReleaseAsync(keyId);

    public Task<Result<PreAuthKeyRecord>> RevokePreAuthKey(string id) => _keys.RevokePreAuthKeyAsync(id);

    public Task<Result<string?>> BootstrapApiKey() => _keys.BootstrapApiKeyAsync(Now);

    public Task<Result<(ApiKeyRecord Key, string Secret)>> CreateApiKey() => _keys.CreateApiKeyAsync(Now);

    public Task<List<ApiKeyRecord>> ListApiKeys() => Task.FromResult(_keys.ListApiKeys());

    public Task<Result<ApiKeyRecord>> RevokeApiKey(string id) => _keys.RevokeApiKeyAsync(id);

    public Task<bool> IsValidApiKey(string secret) => Task.FromResult(_keys.IsValidApiKey(secret));
}

/// <summary>
/// The netmap publisher's grain. Hubs attach every few seconds; a hub whose replica left the cluster, or that has not
/// attached for a while, is detached and its streams count as offline. A new activation (its replica died) knows
/// presence again as the hubs attach, and agents that cannot resume get a full map.
/// </summary>
[KeepAlive]
internal sealed class PublisherGrain(ICoordinatorStore store, MeshOptions options, CoordinatorIdentity identity, IClusterMembershipService membership, ILogger<PublisherGrain> logger)
    : Grain, IPublisherGrain, IPresenceSink
{
    /// <summary>A hub that has not attached for this long is taken for gone (hubs attach every <see cref="HubAttachInterval"/>).</summary>
    public static readonly TimeSpan HubAttachInterval = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan HubTimeout = TimeSpan.FromSeconds(12);
    private readonly Dictionary<string, DateTime> _attached = new(StringComparer.Ordinal);
    private NetmapPublisher _publisher = null!;
    private PolicyRecord? _policy;

    private IRegistryGrain Registry => GrainFactory.GetGrain<IRegistryGrain>(0);

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var nodes = await store.LoadNodesAsync();
        var users = await store.LoadUsersAsync();
        _policy = await store.LoadPolicyAsync();
        (AclPolicy, ulong)? policy = null;
        if (_policy is { } stored)
        {
            // A stored policy was checked when it was set. One this release reads differently closes the mesh (no
            // rules: no node reaches another) rather than opening it, and an admin sets a corrected one.
            var read = AclPolicy.Check(stored.Text);
            if (!read.Ok) logger.LogError("The stored policy, version {Version}, no longer reads: {Problem} No node may reach another until a corrected one is set.", stored.Version, read.Problem!.Message);
            policy = (read.Ok ? read.Value! : AclPolicy.Parse("{ \"acls\": [] }"), (ulong)stored.Version);
        }
        _publisher = new NetmapPublisher(options with { Ipv6Prefix = identity.Ipv6Prefix }, nodes, users, policy, this, new GrainWorkScheduler(this), TimeProvider.System);
        this.RegisterGrainTimer(DetachGoneHubs, new GrainTimerCreationOptions(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1)));
        logger.LogInformation("Netmap publisher active with {Count} nodes", nodes.Count);
    }

    public Task<SessionStart> Attach(string hubId, IHubObserver hub, byte[]? relay, List<OpenStream> streams)
    {
        _attached[hubId] = DateTime.UtcNow;
        _publisher.AttachHub(hubId, new ObserverLink(hub), relay is null ? null : Relay.Parser.ParseFrom(relay), streams);
        return Task.FromResult(_publisher.CurrentMap());
    }

    public Task<Result<SessionStart>> OpenSession(string hubId, NodeRecord node, byte[] endpoints, ulong lastSerial) =>
        Task.FromResult(_publisher.OpenSession(hubId, node, endpoints, lastSerial));

    public Task UpdateEndpoints(long nodeId, string hubId, byte[] endpoints)
    {
        _publisher.UpdateEndpoints(nodeId, hubId, endpoints);
        return Task.CompletedTask;
    }

    public Task CloseSession(long nodeId, string hubId, DateTime at)
    {
        _publisher.CloseSession(nodeId, hubId, at);
        return Task.CompletedTask;
    }

    public Task<bool> RequestConnection(long fromNodeId, byte[] peerKey) => Task.FromResult(_publisher.RequestConnection(fromNodeId, new PublicKey(peerKey)));

    public Task NodeUpdated(NodeRecord record)
    {
        _publisher.NodeUpdated(record);
        return Task.CompletedTask;
    }

    public Task NodeDeleted(long nodeId)
    {
        _publisher.NodeDeleted(nodeId);
        return Task.CompletedTask;
    }

    public Task EndSession(long nodeId, Problem reason)
    {
        _publisher.EndSession(nodeId, reason);
        return Task.CompletedTask;
    }

    public Task<List<NodePresence>> Presence() => Task.FromResult(_publisher.Presence());

    public Task<(ulong Serial, int Online)> Status() => Task.FromResult((_publisher.Serial, _publisher.OnlineCount));

    public Task<List<byte[]>> Relays() => Task.FromResult(_publisher.Relays().ConvertAll(r => r.ToByteArray()));

    public async Task<Result<PolicyRecord>> SetPolicy(string text, string actor)
    {
        var policy = AclPolicy.Check(text);
        if (!policy.Ok) return policy.Problem!;
        var at = DateTime.UtcNow;
        long version;
        try
        {
            version = await store.InsertPolicyAsync(text, at, actor);
        }
        catch (StoreUnavailableException ex)
        {
            return Problem.StoreDown(ex);
        }
        _policy = new PolicyRecord(version, text, at, actor);
        _publisher.SetPolicy(policy.Value!, (ulong)version);
        logger.LogInformation("Policy version {Version} set by {Actor}: {Rules} rules", version, actor, policy.Value!.Rules?.Count.ToString() ?? "no acls, everything allowed;");
        return _policy;
    }

    public Task<PolicyRecord?> Policy() => Task.FromResult(_policy);

    public Task UserNamed(long userId, string name)
    {
        _publisher.UserNamed(userId, name);
        return Task.CompletedTask;
    }

    void IPresenceSink.NodeOnline(long nodeId) => Registry.NodeOnline(nodeId);

    void IPresenceSink.NodeOffline(long nodeId, DateTime at) => Registry.NodeOffline(nodeId, at);

    private Task DetachGoneHubs()
    {
        var snapshot = membership.CurrentSnapshot;
        var now = DateTime.UtcNow;
        foreach (var (hubId, at) in _attached.ToList())
        {
            var silo = SiloAddress.FromParsableString(hubId);
            var status = snapshot.GetSiloStatus(silo);
            // A silo this one's view does not hold yet (None: it joined moments ago) is not gone: only a terminating
            // one, or a hub that stopped attaching, is.
            if (status is not (SiloStatus.ShuttingDown or SiloStatus.Stopping or SiloStatus.Dead) && now - at < HubTimeout) continue;
            logger.LogWarning("Replica {Hub} is gone ({Status}, last attached {Ago:0.0} s ago): its streams are offline", hubId, status, (now - at).TotalSeconds);
            _attached.Remove(hubId);
            _publisher.DetachHub(hubId, now);
        }
        return Task.CompletedTask;
    }

    private sealed class ObserverLink(IHubObserver hub) : IHubLink
    {
        public void Publish(byte[] message) => hub.Publish(message);

        public void Connect(long nodeId, byte[] message) => hub.Connect(nodeId, message);

        public void EndSession(long nodeId, Problem reason) => hub.EndSession(nodeId, reason);
    }
}
