using System.Data.Common;
using Mesh.Protos.V1;

namespace Mesh.Coordinator.Store;

/// <summary>
/// The rows and statements both stores share (SQLite and PostgreSQL take the same SQL here); each store brings its
/// connections, its schema and what a failure of its database looks like. Every change is one statement or one
/// transaction, so a failure leaves nothing half written.
/// </summary>
public abstract class SqlStore : ICoordinatorStore
{
    protected const string SchemaVersionKey = "schema_version";

    /// <summary>Runs database work on a connection, turning a failure of the database into <see cref="StoreUnavailableException"/>.</summary>
    protected abstract Task<T> RunAsync<T>(Func<DbConnection, Task<T>> work);

    public abstract ValueTask DisposeAsync();

    public Task<byte[]?> GetMetaAsync(string key) => RunAsync(connection => MetaAsync(connection, key, null));

    public Task<byte[]> GetOrAddMetaAsync(string key, byte[] value) => RunAsync(async connection =>
    {
        await ExecuteAsync(connection, null, "INSERT INTO meta (key, value) VALUES (@key, @value) ON CONFLICT (key) DO NOTHING", ("@key", key), ("@value", value));
        return (await MetaAsync(connection, key, null))!;
    });

    public Task<List<UserRecord>> LoadUsersAsync() => RunAsync(async connection =>
    {
        await using var command = Command(connection, null, "SELECT id, name, created FROM users ORDER BY id");
        await using var reader = await command.ExecuteReaderAsync();
        var users = new List<UserRecord>();
        while (await reader.ReadAsync()) users.Add(new UserRecord { Id = reader.GetInt64(0), Name = reader.GetString(1), Created = StoreFormats.FromUnix(reader.GetInt64(2)) });
        return users;
    });

    public Task<long> InsertUserAsync(UserRecord user) => RunAsync(async connection =>
    {
        await using var insert = Command(connection, null, "INSERT INTO users (name, created) VALUES (@name, @created) RETURNING id",
            ("@name", user.Name), ("@created", StoreFormats.ToUnix(user.Created)));
        return Convert.ToInt64(await insert.ExecuteScalarAsync());
    });

    public Task RenameUserAsync(long id, string name) => RunAsync(connection => ExecuteAsync(connection, null, "UPDATE users SET name = @name WHERE id = @id", ("@id", id), ("@name", name)));

    public Task DeleteUserAsync(long id) => RunAsync(connection => ExecuteAsync(connection, null, "DELETE FROM users WHERE id = @id", ("@id", id)));

    public Task<List<NodeRecord>> LoadNodesAsync() => RunAsync(async connection =>
    {
        await using var command = Command(connection, null,
            "SELECT id, node_key, name, ipv4, ipv6, state, ephemeral, tags, preauth_key_id, session_hash, created, last_seen, user_id FROM nodes ORDER BY id");
        await using var reader = await command.ExecuteReaderAsync();
        var nodes = new List<NodeRecord>();
        while (await reader.ReadAsync())
        {
            nodes.Add(new NodeRecord
            {
                Id = reader.GetInt64(0),
                NodeKey = (byte[])reader[1],
                Name = reader.GetString(2),
                Ipv4 = reader.GetString(3),
                Ipv6 = reader.GetString(4),
                State = (NodeState)reader.GetInt64(5),
                Ephemeral = reader.GetInt64(6) != 0,
                Tags = StoreFormats.SplitTags(reader.GetString(7)),
                PreAuthKeyId = reader.IsDBNull(8) ? null : reader.GetString(8),
                SessionHash = reader.IsDBNull(9) ? null : (byte[])reader[9],
                Created = StoreFormats.FromUnix(reader.GetInt64(10)),
                LastSeen = reader.IsDBNull(11) ? null : StoreFormats.FromUnix(reader.GetInt64(11)),
                UserId = reader.IsDBNull(12) ? null : reader.GetInt64(12),
            });
        }
        return nodes;
    });

    public Task<long> InsertNodeAsync(NodeRecord node, long nextAddressCounter) => RunAsync(async connection =>
    {
        await using var transaction = await connection.BeginTransactionAsync();
        await using var insert = Command(connection, transaction, """
            INSERT INTO nodes (node_key, name, ipv4, ipv6, state, ephemeral, tags, preauth_key_id, session_hash, created, last_seen, user_id)
            VALUES (@key, @name, @ipv4, @ipv6, @state, @ephemeral, @tags, @preauth, @session, @created, @lastSeen, @user)
            RETURNING id
            """,
            ("@key", node.NodeKey), ("@name", node.Name), ("@ipv4", node.Ipv4), ("@ipv6", node.Ipv6), ("@state", (long)node.State),
            ("@ephemeral", Flag(node.Ephemeral)), ("@tags", StoreFormats.JoinTags(node.Tags)), ("@preauth", node.PreAuthKeyId),
            ("@session", node.SessionHash), ("@created", StoreFormats.ToUnix(node.Created)), ("@lastSeen", Unix(node.LastSeen)), ("@user", node.UserId));
        var id = Convert.ToInt64(await insert.ExecuteScalarAsync());
        await SetMetaAsync(connection, transaction, StoreFormats.AddressCounterKey, BitConverter.GetBytes(nextAddressCounter));
        await transaction.CommitAsync();
        return id;
    });

    public Task UpdateNodeAsync(NodeRecord node) => RunAsync(connection => ExecuteAsync(connection, null,
        "UPDATE nodes SET name = @name, state = @state, tags = @tags, preauth_key_id = @preauth, session_hash = @session, last_seen = @lastSeen, user_id = @user WHERE id = @id",
        ("@id", node.Id), ("@name", node.Name), ("@state", (long)node.State), ("@tags", StoreFormats.JoinTags(node.Tags)), ("@preauth", node.PreAuthKeyId),
        ("@session", node.SessionHash), ("@lastSeen", Unix(node.LastSeen)), ("@user", node.UserId)));

    public Task DeleteNodeAsync(long id) => RunAsync(connection => ExecuteAsync(connection, null, "DELETE FROM nodes WHERE id = @id", ("@id", id)));

    public Task InsertPreAuthKeyAsync(PreAuthKeyRecord key) => RunAsync(connection => ExecuteAsync(connection, null, """
        INSERT INTO preauth_keys (id, hash, reusable, ephemeral, tags, created, expiration, used, revoked, user_id)
        VALUES (@id, @hash, @reusable, @ephemeral, @tags, @created, @expiration, @used, @revoked, @user)
        """,
        ("@id", key.Id), ("@hash", key.Hash), ("@reusable", Flag(key.Reusable)), ("@ephemeral", Flag(key.Ephemeral)),
        ("@tags", StoreFormats.JoinTags(key.Tags)), ("@created", StoreFormats.ToUnix(key.Created)),
        ("@expiration", Unix(key.Expiration)), ("@used", Flag(key.Used)), ("@revoked", Flag(key.Revoked)), ("@user", key.UserId)));

    public Task UpdatePreAuthKeyAsync(PreAuthKeyRecord key) => RunAsync(connection => ExecuteAsync(connection, null,
        "UPDATE preauth_keys SET used = @used, revoked = @revoked WHERE id = @id", ("@id", key.Id), ("@used", Flag(key.Used)), ("@revoked", Flag(key.Revoked))));

    public Task<List<PreAuthKeyRecord>> LoadPreAuthKeysAsync() => RunAsync(async connection =>
    {
        await using var command = Command(connection, null, "SELECT id, hash, reusable, ephemeral, tags, created, expiration, used, revoked, user_id FROM preauth_keys ORDER BY created, id");
        await using var reader = await command.ExecuteReaderAsync();
        var keys = new List<PreAuthKeyRecord>();
        while (await reader.ReadAsync())
        {
            keys.Add(new PreAuthKeyRecord
            {
                Id = reader.GetString(0),
                Hash = (byte[])reader[1],
                Reusable = reader.GetInt64(2) != 0,
                Ephemeral = reader.GetInt64(3) != 0,
                Tags = StoreFormats.SplitTags(reader.GetString(4)),
                Created = StoreFormats.FromUnix(reader.GetInt64(5)),
                Expiration = reader.IsDBNull(6) ? null : StoreFormats.FromUnix(reader.GetInt64(6)),
                Used = reader.GetInt64(7) != 0,
                Revoked = reader.GetInt64(8) != 0,
                UserId = reader.IsDBNull(9) ? null : reader.GetInt64(9),
            });
        }
        return keys;
    });

    public Task InsertApiKeyAsync(ApiKeyRecord key) => RunAsync(connection => ExecuteAsync(connection, null,
        "INSERT INTO api_keys (id, hash, created, revoked) VALUES (@id, @hash, @created, 0)", ("@id", key.Id), ("@hash", key.Hash), ("@created", StoreFormats.ToUnix(key.Created))));

    public Task<List<ApiKeyRecord>> LoadApiKeysAsync() => RunAsync(async connection =>
    {
        await using var command = Command(connection, null, "SELECT id, hash, created, revoked FROM api_keys ORDER BY created, id");
        await using var reader = await command.ExecuteReaderAsync();
        var keys = new List<ApiKeyRecord>();
        while (await reader.ReadAsync())
        {
            keys.Add(new ApiKeyRecord { Id = reader.GetString(0), Hash = (byte[])reader[1], Created = StoreFormats.FromUnix(reader.GetInt64(2)), Revoked = reader.GetInt64(3) != 0 });
        }
        return keys;
    });

    public Task RevokeApiKeyAsync(string id) => RunAsync(connection => ExecuteAsync(connection, null, "UPDATE api_keys SET revoked = 1 WHERE id = @id", ("@id", id)));

    public Task InsertAuditAsync(AuditRecord entry) => RunAsync(connection => ExecuteAsync(connection, null,
        "INSERT INTO audit (at, actor, action, target, source) VALUES (@at, @actor, @action, @target, @source)",
        ("@at", StoreFormats.ToUnix(entry.At)), ("@actor", entry.Actor), ("@action", entry.Action), ("@target", entry.Target), ("@source", entry.Source)));

    public Task<List<AuditRecord>> LoadAuditAsync(int limit) => RunAsync(async connection =>
    {
        await using var command = Command(connection, null, "SELECT id, at, actor, action, target, source FROM audit ORDER BY id DESC LIMIT @limit", ("@limit", (long)limit));
        await using var reader = await command.ExecuteReaderAsync();
        var entries = new List<AuditRecord>();
        while (await reader.ReadAsync())
        {
            entries.Add(new AuditRecord(reader.GetInt64(0), StoreFormats.FromUnix(reader.GetInt64(1)), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetString(5)));
        }
        return entries;
    });

    public Task<PolicyRecord?> LoadPolicyAsync() => RunAsync(async connection =>
    {
        await using var command = Command(connection, null, "SELECT version, text, set_at, actor FROM policies ORDER BY version DESC LIMIT 1");
        await using var reader = await command.ExecuteReaderAsync();
        return await reader.ReadAsync() ? new PolicyRecord(reader.GetInt64(0), reader.GetString(1), StoreFormats.FromUnix(reader.GetInt64(2)), reader.GetString(3)) : null;
    });

    public Task<long> InsertPolicyAsync(string text, DateTime setAt, string actor) => RunAsync(async connection =>
    {
        await using var insert = Command(connection, null, "INSERT INTO policies (text, set_at, actor) VALUES (@text, @at, @actor) RETURNING version",
            ("@text", text), ("@at", StoreFormats.ToUnix(setAt)), ("@actor", actor));
        return Convert.ToInt64(await insert.ExecuteScalarAsync());
    });

    /// <summary>The schema version a database records (0 for the first release's, which recorded none).</summary>
    protected static async Task<int> SchemaVersionAsync(DbConnection connection, DbTransaction? transaction) =>
        await MetaAsync(connection, SchemaVersionKey, transaction) is { } bytes ? BitConverter.ToInt32(bytes) : 0;

    /// <summary>
    /// Schema 3 adds users: every pre-auth key and node written before belongs to the user "default", made here.
    /// The same SQL in both stores (the caller made the users table and the two columns in its own dialect).
    /// </summary>
    protected static async Task MoveToDefaultUserAsync(DbConnection connection, DbTransaction transaction, DateTime now)
    {
        await using var insert = Command(connection, transaction, "INSERT INTO users (name, created) VALUES ('default', @created) RETURNING id", ("@created", StoreFormats.ToUnix(now)));
        var user = Convert.ToInt64(await insert.ExecuteScalarAsync());
        await ExecuteAsync(connection, transaction, "UPDATE preauth_keys SET user_id = @user", ("@user", user));
        await ExecuteAsync(connection, transaction, "UPDATE nodes SET user_id = @user", ("@user", user));
    }

    protected static void RefuseNewer(int version, int known)
    {
        if (version > known) throw new InvalidDataException($"The database has schema version {version}, newer than this release knows ({known}); run a newer mesh-coordinator.");
    }

    protected static async Task<byte[]?> MetaAsync(DbConnection connection, string key, DbTransaction? transaction)
    {
        await using var command = Command(connection, transaction, "SELECT value FROM meta WHERE key = @key", ("@key", key));
        return await command.ExecuteScalarAsync() as byte[];
    }

    protected static Task SetMetaAsync(DbConnection connection, DbTransaction transaction, string key, byte[] value) => ExecuteAsync(connection, transaction,
        "INSERT INTO meta (key, value) VALUES (@key, @value) ON CONFLICT (key) DO UPDATE SET value = excluded.value", ("@key", key), ("@value", value));

    protected static async Task<int> ExecuteAsync(DbConnection connection, DbTransaction? transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        return await command.ExecuteNonQueryAsync();
    }

    private static DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        foreach (var (name, value) in parameters)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = name;
            parameter.Value = value ?? DBNull.Value;
            command.Parameters.Add(parameter);
        }
        return command;
    }

    private static long Flag(bool value) => value ? 1 : 0;

    private static long? Unix(DateTime? time) => time is { } t ? StoreFormats.ToUnix(t) : null;
}
