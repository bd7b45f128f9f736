using Mesh.Protos.V1;
using Microsoft.Data.Sqlite;

namespace Mesh.Coordinator.Store;

/// <summary>
/// The embedded coordinator's store: SQLite (WAL) in its data directory. Every change is one transaction, so a
/// failure leaves nothing half written. A database written by an earlier release is migrated in place.
/// </summary>
public sealed class SqliteStore : ICoordinatorStore
{
    /// <summary>The schema's version; each migration step brings a database one version forward, in one transaction.</summary>
    public const int SchemaVersion = 1;

    private const string SchemaVersionKey = "schema_version";
    private readonly SqliteConnection _connection;
    private readonly object _lock = new();

    private SqliteStore(SqliteConnection connection) => _connection = connection;

    public static SqliteStore Open(string path)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        connection.Open();
        var store = new SqliteStore(connection);
        try
        {
            store.Execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
            store.Migrate();
            return store;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    private void Migrate()
    {
        // Version 1 is the first release's schema, which did not record a version: CREATE IF NOT EXISTS takes
        // such a database as it is, and makes a new one.
        Execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);");
        var version = Meta(SchemaVersionKey) is { } bytes ? BitConverter.ToInt32(bytes) : 0;
        if (version > SchemaVersion)
        {
            throw new InvalidDataException($"The database has schema version {version}, newer than this release knows ({SchemaVersion}); run a newer mesh-coordinator.");
        }
        if (version == SchemaVersion) return;
        using var transaction = _connection.BeginTransaction();
        Execute("""
            CREATE TABLE IF NOT EXISTS preauth_keys (
                id TEXT PRIMARY KEY, hash BLOB NOT NULL, reusable INTEGER NOT NULL, ephemeral INTEGER NOT NULL,
                tags TEXT NOT NULL, created INTEGER NOT NULL, expiration INTEGER, used INTEGER NOT NULL, revoked INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, hash BLOB NOT NULL, created INTEGER NOT NULL, revoked INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS nodes (
                id INTEGER PRIMARY KEY AUTOINCREMENT, node_key BLOB NOT NULL UNIQUE, name TEXT NOT NULL UNIQUE,
                ipv4 TEXT NOT NULL UNIQUE, ipv6 TEXT NOT NULL UNIQUE, state INTEGER NOT NULL, ephemeral INTEGER NOT NULL,
                tags TEXT NOT NULL, preauth_key_id TEXT, session_hash BLOB, created INTEGER NOT NULL, last_seen INTEGER);
            """, transaction);
        SetMeta(SchemaVersionKey, BitConverter.GetBytes(SchemaVersion), transaction);
        transaction.Commit();
    }

    public Task<byte[]?> GetMetaAsync(string key)
    {
        lock (_lock) return Task.FromResult(Meta(key));
    }

    public Task<byte[]> GetOrAddMetaAsync(string key, byte[] value)
    {
        lock (_lock)
        {
            using var command = Command("INSERT INTO meta (key, value) VALUES ($key, $value) ON CONFLICT(key) DO NOTHING", ("$key", key), ("$value", value));
            command.ExecuteNonQuery();
            return Task.FromResult(Meta(key)!);
        }
    }

    public Task<List<NodeRecord>> LoadNodesAsync()
    {
        lock (_lock)
        {
            using var command = Command("SELECT id, node_key, name, ipv4, ipv6, state, ephemeral, tags, preauth_key_id, session_hash, created, last_seen FROM nodes ORDER BY id");
            using var reader = command.ExecuteReader();
            var nodes = new List<NodeRecord>();
            while (reader.Read())
            {
                nodes.Add(new NodeRecord
                {
                    Id = reader.GetInt64(0),
                    NodeKey = (byte[])reader[1],
                    Name = reader.GetString(2),
                    Ipv4 = reader.GetString(3),
                    Ipv6 = reader.GetString(4),
                    State = (NodeState)reader.GetInt32(5),
                    Ephemeral = reader.GetInt64(6) != 0,
                    Tags = StoreFormats.SplitTags(reader.GetString(7)),
                    PreAuthKeyId = reader.IsDBNull(8) ? null : reader.GetString(8),
                    SessionHash = reader.IsDBNull(9) ? null : (byte[])reader[9],
                    Created = StoreFormats.FromUnix(reader.GetInt64(10)),
                    LastSeen = reader.IsDBNull(11) ? null : StoreFormats.FromUnix(reader.GetInt64(11)),
                });
            }
            return Task.FromResult(nodes);
        }
    }

    public Task<long> InsertNodeAsync(NodeRecord node, long nextAddressCounter)
    {
        lock (_lock)
        {
            using var transaction = _connection.BeginTransaction();
            using var insert = Command("""
                INSERT INTO nodes (node_key, name, ipv4, ipv6, state, ephemeral, tags, preauth_key_id, session_hash, created, last_seen)
                VALUES ($key, $name, $ipv4, $ipv6, $state, $ephemeral, $tags, $preauth, $session, $created, $lastSeen);
                SELECT last_insert_rowid();
                """,
                ("$key", node.NodeKey), ("$name", node.Name), ("$ipv4", node.Ipv4), ("$ipv6", node.Ipv6), ("$state", (int)node.State),
                ("$ephemeral", node.Ephemeral ? 1 : 0), ("$tags", StoreFormats.JoinTags(node.Tags)), ("$preauth", node.PreAuthKeyId),
                ("$session", node.SessionHash), ("$created", StoreFormats.ToUnix(node.Created)), ("$lastSeen", node.LastSeen is { } seen ? StoreFormats.ToUnix(seen) : null));
            insert.Transaction = transaction;
            var id = (long)insert.ExecuteScalar()!;
            SetMeta(StoreFormats.AddressCounterKey, BitConverter.GetBytes(nextAddressCounter), transaction);
            transaction.Commit();
            return Task.FromResult(id);
        }
    }

    public Task UpdateNodeAsync(NodeRecord node)
    {
        lock (_lock)
        {
            using var command = Command("""
                UPDATE nodes SET name = $name, state = $state, tags = $tags, preauth_key_id = $preauth, session_hash = $session, last_seen = $lastSeen WHERE id = $id
                """,
                ("$id", node.Id), ("$name", node.Name), ("$state", (int)node.State), ("$tags", StoreFormats.JoinTags(node.Tags)), ("$preauth", node.PreAuthKeyId),
                ("$session", node.SessionHash), ("$lastSeen", node.LastSeen is { } seen ? StoreFormats.ToUnix(seen) : null));
            command.ExecuteNonQuery();
        }
        return Task.CompletedTask;
    }

    public Task DeleteNodeAsync(long id)
    {
        lock (_lock)
        {
            using var command = Command("DELETE FROM nodes WHERE id = $id", ("$id", id));
            command.ExecuteNonQuery();
        }
        return Task.CompletedTask;
    }

    public Task InsertPreAuthKeyAsync(PreAuthKeyRecord key)
    {
        lock (_lock)
        {
            using var command = Command("""
                INSERT INTO preauth_keys (id, hash, reusable, ephemeral, tags, created, expiration, used, revoked)
                VALUES ($id, $hash, $reusable, $ephemeral, $tags, $created, $expiration, $used, $revoked)
                """,
                ("$id", key.Id), ("$hash", key.Hash), ("$reusable", key.Reusable ? 1 : 0), ("$ephemeral", key.Ephemeral ? 1 : 0),
                ("$tags", StoreFormats.JoinTags(key.Tags)), ("$created", StoreFormats.ToUnix(key.Created)),
                ("$expiration", key.Expiration is { } e ? StoreFormats.ToUnix(e) : null), ("$used", key.Used ? 1 : 0), ("$revoked", key.Revoked ? 1 : 0));
            command.ExecuteNonQuery();
        }
        return Task.CompletedTask;
    }

    public Task UpdatePreAuthKeyAsync(PreAuthKeyRecord key)
    {
        lock (_lock)
        {
            using var command = Command("UPDATE preauth_keys SET used = $used, revoked = $revoked WHERE id = $id",
                ("$id", key.Id), ("$used", key.Used ? 1 : 0), ("$revoked", key.Revoked ? 1 : 0));
            command.ExecuteNonQuery();
        }
        return Task.CompletedTask;
    }

    public Task<List<PreAuthKeyRecord>> LoadPreAuthKeysAsync()
    {
        lock (_lock)
        {
            using var command = Command("SELECT id, hash, reusable, ephemeral, tags, created, expiration, used, revoked FROM preauth_keys ORDER BY created");
            using var reader = command.ExecuteReader();
            var keys = new List<PreAuthKeyRecord>();
            while (reader.Read())
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
                });
            }
            return Task.FromResult(keys);
        }
    }

    public Task InsertApiKeyAsync(ApiKeyRecord key)
    {
        lock (_lock)
        {
            using var command = Command("INSERT INTO api_keys (id, hash, created, revoked) VALUES ($id, $hash, $created, 0)",
                ("$id", key.Id), ("$hash", key.Hash), ("$created", StoreFormats.ToUnix(key.Created)));
            command.ExecuteNonQuery();
        }
        return Task.CompletedTask;
    }

    public Task<List<ApiKeyRecord>> LoadApiKeysAsync()
    {
        lock (_lock)
        {
            using var command = Command("SELECT id, hash, created, revoked FROM api_keys ORDER BY created");
            using var reader = command.ExecuteReader();
            var keys = new List<ApiKeyRecord>();
            while (reader.Read())
            {
                keys.Add(new ApiKeyRecord { Id = reader.GetString(0), Hash = (byte[])reader[1], Created = StoreFormats.FromUnix(reader.GetInt64(2)), Revoked = reader.GetInt64(3) != 0 });
            }
            return Task.FromResult(keys);
        }
    }

    public Task RevokeApiKeyAsync(string id)
    {
        lock (_lock)
        {
            using var command = Command("UPDATE api_keys SET revoked = 1 WHERE id = $id", ("$id", id));
            command.ExecuteNonQuery();
        }
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        _connection.Dispose();
        return ValueTask.CompletedTask;
    }

    private byte[]? Meta(string key)
    {
        using var command = Command("SELECT value FROM meta WHERE key = $key", ("$key", key));
        return command.ExecuteScalar() as byte[];
    }

    private void SetMeta(string key, byte[] value, SqliteTransaction transaction)
    {
        using var command = Command("INSERT INTO meta (key, value) VALUES ($key, $value) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            ("$key", key), ("$value", value));
        command.Transaction = transaction;
        command.ExecuteNonQuery();
    }

    private void Execute(string sql, SqliteTransaction? transaction = null)
    {
        using var command = Command(sql);
        command.Transaction = transaction;
        command.ExecuteNonQuery();
    }

    private SqliteCommand Command(string sql, params (string Name, object? Value)[] parameters)
    {
        var command = _connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters) command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return command;
    }
}
