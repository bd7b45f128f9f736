namespace Mesh.Coordinator.Store;

/// <summary>
/// The coordinator's durable state: users, nodes, the policy's versions, pre-auth keys, admin API keys and a few coordinator-wide values.
/// SQLite in a data directory for one coordinator, PostgreSQL for replicas. Each grain writes only its own
/// rows (the node registry its nodes, the key ring its keys); a failure leaves nothing half written and
/// surfaces as <see cref="StoreUnavailableException"/> when the database cannot be reached.
/// </summary>
public interface ICoordinatorStore : IAsyncDisposable
{
    Task<byte[]?> GetMetaAsync(string key);

    /// <summary>Sets the value only if the key has none yet; returns the value that is stored (replicas starting at once agree).</summary>
    Task<byte[]> GetOrAddMetaAsync(string key, byte[] value);

    Task<List<UserRecord>> LoadUsersAsync();

    /// <summary>Inserts a user; returns its id.</summary>
    Task<long> InsertUserAsync(UserRecord user);

    Task RenameUserAsync(long id, string name);

    Task DeleteUserAsync(long id);

    Task<List<NodeRecord>> LoadNodesAsync();

    /// <summary>Inserts a node and, in the same transaction, the address counter it advanced; returns the node's id.</summary>
    Task<long> InsertNodeAsync(NodeRecord node, long nextAddressCounter);

    Task UpdateNodeAsync(NodeRecord node);

    Task DeleteNodeAsync(long id);

    Task<List<PreAuthKeyRecord>> LoadPreAuthKeysAsync();

    Task InsertPreAuthKeyAsync(PreAuthKeyRecord key);

    /// <summary>Sets a pre-auth key's used and revoked flags.</summary>
    Task UpdatePreAuthKeyAsync(PreAuthKeyRecord key);

    Task<List<ApiKeyRecord>> LoadApiKeysAsync();

    Task InsertApiKeyAsync(ApiKeyRecord key);

    Task RevokeApiKeyAsync(string id);

    /// <summary>The policy in force: the newest version set, or null when none ever was.</summary>
    Task<PolicyRecord?> LoadPolicyAsync();

    /// <summary>Stores a new version of the policy (the old ones stay); returns its version.</summary>
    Task<long> InsertPolicyAsync(string text, DateTime setAt, string actor);

    /// <summary>Records an admin action (its id is the store's).</summary>
    Task InsertAuditAsync(AuditRecord entry);

    /// <summary>The newest <paramref name="limit"/> admin actions, newest first.</summary>
    Task<List<AuditRecord>> LoadAuditAsync(int limit);
}

/// <summary>The database could not be reached or refused the write; nothing of the change was stored.</summary>
public sealed class StoreUnavailableException(string message, Exception inner) : Exception(message, inner);
