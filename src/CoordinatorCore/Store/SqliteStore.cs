using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Mesh.Coordinator.Store;

/// <summary>
/// The embedded coordinator's store: SQLite (WAL) in its data directory, one connection taken in turn. A database
/// written by an earlier release is migrated in place.
/// </summary>
public sealed class SqliteStore : SqlStore
{
    /// <summary>The schema's version; each migration step brings a database one version forward, in one transaction.</summary>
    public const int SchemaVersion = 4;

    private readonly SqliteConnection _connection;
    private readonly SemaphoreSlim _turn = new(1, 1);

    private SqliteStore(SqliteConnection connection) => _connection = connection;

    public static SqliteStore Open(string path)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        connection.Open();
        var store = new SqliteStore(connection);
        try
        {
            // SQLite's async calls complete synchronously, so this waits on nothing.
            MigrateAsync(connection).GetAwaiter().GetResult();
            return store;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    private static async Task MigrateAsync(SqliteConnection connection)
    {
        await ExecuteAsync(connection, null, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
        // Version 1 is the first release's schema, which did not record a version: CREATE IF NOT EXISTS takes
        // such a database as it is, and makes a new one. Version 2 adds the audit log of admin actions; version 3 users,
        // the owners of pre-auth keys and nodes (those of before go to the user "default"); version 4 the policy's versions.
        await ExecuteAsync(connection, null, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);");
        var version = await SchemaVersionAsync(connection, null);
        RefuseNewer(version, SchemaVersion);
        if (version == SchemaVersion) return;
        await using var transaction = await connection.BeginTransactionAsync();
        await ExecuteAsync(connection, transaction, """
            CREATE TABLE IF NOT EXISTS preauth_keys (
                id TEXT PRIMARY KEY, hash BLOB NOT NULL, reusable INTEGER NOT NULL, ephemeral INTEGER NOT NULL,
                tags TEXT NOT NULL, created INTEGER NOT NULL, expiration INTEGER, used INTEGER NOT NULL, revoked INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, hash BLOB NOT NULL, created INTEGER NOT NULL, revoked INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS nodes (
                id INTEGER PRIMARY KEY AUTOINCREMENT, node_key BLOB NOT NULL UNIQUE, name TEXT NOT NULL UNIQUE,
                ipv4 TEXT NOT NULL UNIQUE, ipv6 TEXT NOT NULL UNIQUE, state INTEGER NOT NULL, ephemeral INTEGER NOT NULL,
                tags TEXT NOT NULL, preauth_key_id TEXT, session_hash BLOB, created INTEGER NOT NULL, last_seen INTEGER);
            CREATE TABLE IF NOT EXISTS audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, source TEXT NOT NULL);
            """);
        if (version < 3)
        {
            await ExecuteAsync(connection, transaction, """
                CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, created INTEGER NOT NULL);
                ALTER TABLE preauth_keys ADD COLUMN user_id INTEGER REFERENCES users(id);
                ALTER TABLE nodes ADD COLUMN user_id INTEGER REFERENCES users(id);
                """);
            await MoveToDefaultUserAsync(connection, transaction, DateTime.UtcNow);
        }
        if (version < 4)
        {
            await ExecuteAsync(connection, transaction,
                "CREATE TABLE policies (version INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL, set_at INTEGER NOT NULL, actor TEXT NOT NULL);");
        }
        await SetMetaAsync(connection, transaction, SchemaVersionKey, BitConverter.GetBytes(SchemaVersion));
        await transaction.CommitAsync();
    }

    protected override async Task<T> RunAsync<T>(Func<DbConnection, Task<T>> work)
    {
        await _turn.WaitAsync();
        try
        {
            return await work(_connection);
        }
        catch (SqliteException ex)
        {
            throw new StoreUnavailableException($"SQLite refused the change: {ex.Message}", ex);
        }
        finally
        {
            _turn.Release();
        }
    }

    public override ValueTask DisposeAsync()
    {
        _connection.Dispose();
        _turn.Dispose();
        return ValueTask.CompletedTask;
    }
}
