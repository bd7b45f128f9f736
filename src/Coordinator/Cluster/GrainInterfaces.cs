using Mesh.Coordinator.Control;
using Orleans.Concurrency;
using Mesh.Coordinator.Store;

namespace Mesh.Coordinator.Cluster;

/// <summary>The node registry of the whole cluster (one activation, key 0): the only writer of nodes.</summary>
public interface IRegistryGrain : IGrainWithIntegerKey
{
    Task<int> CountOwnedBy(long userId);

    Task<List<Control.PendingNode>> Pending();

    Task<long> AddressCounter();

    Task<Result<Registration>> Register(RegistrationRequest request);

    Task<Result<NodeRecord>> Authenticate(string sessionToken);

    Task<List<NodeRecord>> List();

    Task<Result<NodeRecord>> Find(string reference);

    Task<Result<NodeRecord>> Rename(string reference, string newName);

    Task<Result<NodeRecord>> Approve(string reference);

    Task<Result<NodeRecord>> Expire(string reference);

    Task<Result<NodeRecord>> Delete(string reference);

    Task<Result<int>> ExpireJoinedWith(string keyId);

    [OneWay]
    Task NodeOnline(long nodeId);

    [OneWay]
    Task NodeOffline(long nodeId, DateTime at);

    Task<int> Count();
}

/// <summary>Pre-auth keys and admin API keys of the whole cluster (one activation, key 0): the only writer of keys.</summary>
public interface IKeyRingGrain : IGrainWithIntegerKey
{
    Task<Result<UserRecord>> CreateUser(string name);

    Task<List<UserRecord>> ListUsers();

    Task<Result<UserRecord>> RenameUser(string name, string newName);

    Task<Result<UserRecord>> DeleteUser(string name, int nodesOwned);

    Task<UserRecord?> FindUser(string name);

    Task<Result<(PreAuthKeyRecord Key, string Secret)>> CreatePreAuthKey(bool reusable, bool ephemeral, TimeSpan? expiration, IReadOnlyList<string> tags, string? user);

    Task<List<PreAuthKeyRecord>> ListPreAuthKeys();

    Task<Result<KeyGrant>> Use(string secret);

    Task Release(string keyId);

    Task<Result<PreAuthKeyRecord>> RevokePreAuthKey(string id);

    Task<Result<string?>> BootstrapApiKey();

    Task<Result<(ApiKeyRecord Key, string Secret)>> CreateApiKey();

    Task<List<ApiKeyRecord>> ListApiKeys();

    Task<Result<ApiKeyRecord>> RevokeApiKey(string id);

    Task<bool> IsValidApiKey(string secret);
}

/// <summary>The netmap of the whole cluster (one activation, key 0): serials, the change log, presence, fan-out to every replica's hub.</summary>
public interface IPublisherGrain : IGrainWithIntegerKey
{
    /// <summary>A hub attaches (every few seconds) with its relay (a serialized Relay, or null) and open streams; returns the full map and the deltas since.</summary>
    Task<SessionStart> Attach(string hubId, IHubObserver hub, byte[]? relay, List<OpenStream> streams);

    Task<Result<SessionStart>> OpenSession(string hubId, NodeRecord node, byte[] endpoints, ulong lastSerial);

    [OneWay]
    Task UpdateEndpoints(long nodeId, string hubId, byte[] endpoints);

    [OneWay]
    Task CloseSession(long nodeId, string hubId, DateTime at);

    Task<bool> RequestConnection(long fromNodeId, byte[] peerKey);

    [OneWay]
    Task NodeUpdated(NodeRecord record);

    [OneWay]
    Task NodeDeleted(long nodeId);

    [OneWay]
    Task EndSession(long nodeId, Problem reason);

    Task<List<NodePresence>> Presence();

    Task<(ulong Serial, int Online)> Status();

    /// <summary>Every attached replica's relay, each a serialized Relay.</summary>
    Task<List<byte[]>> Relays();

    /// <summary>Checks the policy (and runs its tests), stores it as the next version and applies it to every map.</summary>
    Task<Result<PolicyRecord>> SetPolicy(string text, string actor);

    /// <summary>The policy in force, or null when none was ever set.</summary>
    Task<PolicyRecord?> Policy();

    /// <summary>A user was made or renamed: policies name users.</summary>
    [OneWay]
    Task UserNamed(long userId, string name);
}

/// <summary>A replica's hub as the publisher calls it; every call is one-way.</summary>
public interface IHubObserver : IGrainObserver
{
    void Publish(byte[] message);

    void Connect(long nodeId, byte[] message);

    void EndSession(long nodeId, Problem reason);
}
