using Mesh.Protos.V1;
using Microsoft.Data.Sqlite;

namespace Mesh.Coordinator.Store;

/// <summary>
/// The coordinator's durable state in SQLite (WAL): nodes, pre-auth keys, admin API keys and a few
/// coordinator-wide values. Every change is one transaction, so a failure leaves nothing half written.
/// </summary>
public sealed class CoordinatorStore : IDisposable
{
    private readonly SqliteConnection _connection;
    private readonly object _lock = new();

    private CoordinatorStore(SqliteConnection connection) => _connection = connection;

    public static CoordinatorStore Open(string path)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        connection.Open();
        var store = new CoordinatorStore(connection);
        store.Execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
        store.Execute("""
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS preauth_keys (
                id TEXT PRIMARY KEY, hash BLOB NOT NULL, reusable INTEGER NOT NULL, ephemeral INTEGER NOT NULL,
                tags TEXT NOT NULL, created INTEGER NOT NULL, expiration INTEGER, used INTEGER NOT NULL, revoked INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, hash BLOB NOT NULL, created INTEGER NOT NULL, revoked INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS nodes (
                id INTEGER PRIMARY KEY AUTOINCREMENT, node_key BLOB NOT NULL UNIQUE, name TEXT NOT NULL UNIQUE,
                ipv4 TEXT NOT NULL UNIQUE, ipv6 TEXT NOT NULL UNIQUE, state INTEGER NOT NULL, ephemeral INTEGER NOT NULL,
                tags TEXT NOT NULL, preauth_key_id TEXT, session_hash BLOB, created INTEGER NOT NULL, last_seen INTEGER);
            """);
        return store;
    }

    public byte[]? GetMeta(string key)
    {
        lock (_lock)
        {
            using var command = Command("SELECT value FROM meta WHERE key = $key", ("$key", key));
            return command.ExecuteScalar() as byte[];
        }
    }

    public void SetMeta(string key, byte[] value)
    {
        lock (_lock)
        {
            using var command = Command("INSERT INTO meta (key, value) VALUES ($key, $value) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                ("$key", key), ("$value", value));
            command.ExecuteNonQuery();
        }
    }

    public List<NodeRecord> LoadNodes()
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
                    Tags = SplitTags(reader.GetString(7)),
                    PreAuthKeyId = reader.IsDBNull(8) ? null : reader.GetString(8),
                    SessionHash = reader.IsDBNull(9) ? null : (byte[])reader[9],
                    Created = FromUnix(reader.GetInt64(10)),
                    LastSeen = reader.IsDBNull(11) ? null : FromUnix(reader.GetInt64(11)),
                });
            }
            return nodes;
        }
    }

    /// <summary>Inserts a node and, in the same transaction, marks its one-off pre-auth key used and advances the address counter.</summary>
    public long InsertNode(NodeRecord node, string? consumeOneOffKey, byte[] nextAddressCounter)
    {
        lock (_lock)
        {
            using var transaction = _connection.BeginTransaction();
            if (consumeOneOffKey is not null)
            {
                using var use = Command("UPDATE preauth_keys SET used = 1 WHERE id = $id AND used = 0", ("$id", consumeOneOffKey));
                use.Transaction = transaction;
                if (use.ExecuteNonQuery() != 1) throw new InvalidOperationException("The pre-auth key was used meanwhile.");
            }
            using var insert = Command("""
                INSERT INTO nodes (node_key, name, ipv4, ipv6, state, ephemeral, tags, preauth_key_id, session_hash, created, last_seen)
                VALUES ($key, $name, $ipv4, $ipv6, $state, $ephemeral, $tags, $preauth, $session, $created, $lastSeen);
                SELECT last_insert_rowid();
                """,
                ("$key", node.NodeKey), ("$name", node.Name), ("$ipv4", node.Ipv4), ("$ipv6", node.Ipv6), ("$state", (int)node.State),
                ("$ephemeral", node.Ephemeral ? 1 : 0), ("$tags", JoinTags(node.Tags)), ("$preauth", node.PreAuthKeyId),
                ("$session", node.SessionHash), ("$created", ToUnix(node.Created)), ("$lastSeen", node.LastSeen is { } seen ? ToUnix(seen) : null));
            insert.Transaction = transaction;
            var id = (long)insert.ExecuteScalar()!;
            using var counter = Command("INSERT INTO meta (key, value) VALUES ('address_counter', $value) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                ("$value", nextAddressCounter));
            counter.Transaction = transaction;
            counter.ExecuteNonQuery();
            transaction.Commit();
            return id;
        }
    }

    public void UpdateNode(NodeRecord node)
    {
        lock (_lock)
        {
            using var command = Command("""
                UPDATE nodes SET name = $name, state = $state, tags = $tags, session_hash = $session, last_seen = $lastSeen WHERE id = $id
                """,
                ("$id", node.Id), ("$name", node.Name), ("$state", (int)node.State), ("$tags", JoinTags(node.Tags)),
                ("$session", node.SessionHash), ("$lastSeen", node.LastSeen is { } seen ? ToUnix(seen) : null));
            command.ExecuteNonQuery();
        }
    }

    public void DeleteNode(long id)
    {
        lock (_lock)
        {
            using var command = Command("DELETE FROM nodes WHERE id = $id", ("$id", id));
            command.ExecuteNonQuery();
        }
    }

    public void InsertPreAuthKey(PreAuthKeyRecord key)
    {
        lock (_lock)
        {
            using var command = Command("""
                INSERT INTO preauth_keys (id, hash, reusable, ephemeral, tags, created, expiration, used, revoked)
                VALUES ($id, $hash, $reusable, $ephemeral, $tags, $created, $expiration, 0, 0)
                """,
                ("$id", key.Id), ("$hash", key.Hash), ("$reusable", key.Reusable ? 1 : 0), ("$ephemeral", key.Ephemeral ? 1 : 0),
                ("$tags", JoinTags(key.Tags)), ("$created", ToUnix(key.Created)), ("$expiration", key.Expiration is { } e ? ToUnix(e) : null));
            command.ExecuteNonQuery();
        }
    }

    public List<PreAuthKeyRecord> LoadPreAuthKeys()
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
                    Tags = SplitTags(reader.GetString(4)),
                    Created = FromUnix(reader.GetInt64(5)),
                    Expiration = reader.IsDBNull(6) ? null : FromUnix(reader.GetInt64(6)),
                    Used = reader.GetInt64(7) != 0,
                    Revoked = reader.GetInt64(8) != 0,
                });
            }
            return keys;
        }
    }

    public bool RevokePreAuthKey(string id) => SetFlag("preauth_keys", "revoked", id);

    public bool MarkPreAuthKeyUsed(string id) => SetFlag("preauth_keys", "used", id);

    public void InsertApiKey(ApiKeyRecord key)
    {
        lock (_lock)
        {
            using var command = Command("INSERT INTO api_keys (id, hash, created, revoked) VALUES ($id, $hash, $created, 0)",
                ("$id", key.Id), ("$hash", key.Hash), ("$created", ToUnix(key.Created)));
            command.ExecuteNonQuery();
        }
    }

    public List<ApiKeyRecord> LoadApiKeys()
    {
        lock (_lock)
        {
            using var command = Command("SELECT id, hash, created, revoked FROM api_keys ORDER BY created");
            using var reader = command.ExecuteReader();
            var keys = new List<ApiKeyRecord>();
            while (reader.Read())
            {
                keys.Add(new ApiKeyRecord { Id = reader.GetString(0), Hash = (byte[])reader[1], Created = FromUnix(reader.GetInt64(2)), Revoked = reader.GetInt64(3) != 0 });
            }
            return keys;
        }
    }

    public bool RevokeApiKey(string id) => SetFlag("api_keys", "revoked", id);

    public void Dispose() => _connection.Dispose();

    private bool SetFlag(string table, string column, string id)
    {
        lock (_lock)
        {
            using var command = Command($"UPDATE {table} SET {column} = 1 WHERE id = $id", ("$id", id));
            return command.ExecuteNonQuery() == 1;
        }
    }

    private void Execute(string sql)
    {
        using var command = Command(sql);
        command.ExecuteNonQuery();
    }

    private SqliteCommand Command(string sql, params (string Name, object? Value)[] parameters)
    {
        var command = _connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters) command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return command;
    }

    private static long ToUnix(DateTime time) => new DateTimeOffset(time.ToUniversalTime()).ToUnixTimeMilliseconds();
    private static DateTime FromUnix(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms).UtcDateTime;
    private static string JoinTags(IReadOnlyList<string> tags) => string.Join(',', tags);
    private static IReadOnlyList<string> SplitTags(string tags) => tags.Split(',', StringSplitOptions.RemoveEmptyEntries);
}
