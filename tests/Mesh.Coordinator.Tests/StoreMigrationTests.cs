using Mesh.Coordinator.Hosting;
using Mesh.Protos.V1;

namespace Mesh.Coordinator.Tests;

/// <summary>
/// A data directory written by the release before the schema was versioned (Fixtures/coordinator-v1.db, made by
/// that release's coordinator: three nodes, three pre-auth keys, an API key) is served as it is.
/// </summary>
public sealed class StoreMigrationTests
{
    private const string CoordinatorKey = "r11yz2uFeZLt7AE6Axw1XtMDwqxW+Ro8SEHHOUzMe0E=";
    private const string ApiSecret = "mak_f3dd79355326_KoLrtr4htpqp-kJqAmXyH0Nof_epDzlb3zeNn9uAGt4";
    private const string ReusableSecret = "mpk_ef2a37cec02d_3h8R3Fp_oM4Ak8e3DnT4mrGoc7XLz7WTVSO2GqbShz0";
    private const string AlphaSession = "mst_8d0525c51f31_G00PX77B4B5gchwc-4mBuCHc6ObdsCtPr-qygGpW7K4";

    /// <summary>A coordinator on a data directory holding a fixture database written by an earlier release, and that release's admin key.</summary>
    private static Task<CoordinatorRig> StartFromAsync(string fixture, string adminKey)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), $"mesh-migrate-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dataDir);
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", fixture), Path.Combine(dataDir, "coordinator.db"));
        File.WriteAllText(Path.Combine(dataDir, CoordinatorOptions.AdminKeyFile), adminKey + "\n");
        return CoordinatorRig.StartAsync(dataDir: dataDir);
    }

    [Fact]
    public async Task AFirstReleaseDataDirectoryKeepsNodesKeysAndTheCoordinatorKey()
    {
        await using var rig = await StartFromAsync("coordinator-v1.db", ApiSecret);

        var challenge = await rig.NewClient().GetChallengeAsync(new GetChallengeRequest());
        Assert.Equal(CoordinatorKey, Convert.ToBase64String(challenge.CoordinatorKey.Span));

        var nodes = (await rig.Admin.ListNodesAsync(new ListNodesRequest())).Nodes;
        Assert.Equal(
            [
                "1 alpha 100.64.0.1,fd34:2dd8:b8fc::1 Approved home,lab s3ZS20p9eu4RM6XVrfM3IoXaEFvwoCMDg+qsjAWEU2w=",
                "2 bravo 100.64.0.2,fd34:2dd8:b8fc::2 Approved  E39THVsvZhgeSbTe5UvPUelWdHCngmat9lbmamoLdXA=",
                "3 gamma 100.64.0.3,fd34:2dd8:b8fc::3 Pending  KIO0LNs+IB6ywzEwDg+FhiENf/RSHepkIXHJBXKM/SE=",
            ],
            nodes.Select(n => $"{n.Id} {n.Name} {string.Join(',', n.Addresses)} {n.State} {string.Join(',', n.Tags)} {Convert.ToBase64String(n.NodeKey.Span)}"));

        var preAuth = (await rig.Admin.ListPreAuthKeysAsync(new ListPreAuthKeysRequest())).Keys;
        Assert.Equal(
            [
                "ef2a37cec02d reusable=True ephemeral=False used=False revoked=False tags=home,lab",
                "1a53a6aefba9 reusable=False ephemeral=False used=True revoked=False tags=",
                "060bd84b92f6 reusable=True ephemeral=True used=False revoked=True tags=ci",
            ],
            preAuth.Select(k => $"{k.Id} reusable={k.Reusable} ephemeral={k.Ephemeral} used={k.Used} revoked={k.Revoked} tags={string.Join(',', k.Tags)}"));
        Assert.Equal(["f3dd79355326 revoked=False"], (await rig.Admin.ListApiKeysAsync(new ListApiKeysRequest())).Keys.Select(k => $"{k.Id} revoked={k.Revoked}"));

        // A session token alone no longer opens a stream: the hello must prove the node key, which an agent of
        // the old release does not send, so it is refused and the agent registers again with its key.
        using (var sync = rig.NewClient(AlphaSession).Sync())
        {
            var refused = await Assert.ThrowsAsync<Grpc.Core.RpcException>(async () =>
            {
                await sync.RequestStream.WriteAsync(new SyncRequest { Hello = new SyncHello { Endpoints = TestAgent.Candidates("192.0.2.10:41641") } });
                await sync.ResponseStream.MoveNext(CancellationToken.None);
            });
            Assert.Equal(Grpc.Core.StatusCode.Unauthenticated, refused.StatusCode);
        }

        // The old reusable key still registers nodes, the next address follows the old ones, and the map holds
        // the approved nodes (the pending one is not) at their old addresses.
        await using var delta = await rig.JoinAsync("delta", ReusableSecret);
        Assert.Equal("100.64.0.4/32", delta.Registration.Addresses[0]);
        await Eventually.HoldsAsync(() => delta.Read(v => v.Self) is not null, TimeSpan.FromSeconds(10), "delta's map");
        Assert.Equal(["alpha 100.64.0.1/32", "bravo 100.64.0.2/32", "delta 100.64.0.4/32"],
            delta.Read(v => v.Peers.Values.Append(v.Self!).OrderBy(p => p.Name).Select(p => $"{p.Name} {p.AllowedIps[0]}").Distinct().ToList()));
        Assert.Equal(["home", "lab"], (await rig.Admin.GetNodeAsync(new NodeRef { Node = "delta" })).Tags);
    }

    /// <summary>
    /// Fixtures/coordinator-schema1.db was written by the release before this change (schema 1, commit dddc2e9):
    /// its coordinator with three agents (alpha with a reusable tagged key, bravo with a one-off key, gamma without
    /// a key, so a pending row), an ephemeral key revoked, and a second API key.
    /// </summary>
    [Fact]
    public async Task TheLastReleasesDataDirectoryKeepsEveryNodeAndKeyAndGainsTheAuditLog()
    {
        await using var rig = await StartFromAsync("coordinator-schema1.db", "mak_858ef36442b5_lKksNA4X-TEVWjG1hd-5olDsrjHRyoCAD26kuVqzGmY");

        Assert.Equal(
            [
                "1 alpha 100.64.0.1,fd45:e4c0:2426::1 Approved home,lab",
                "2 bravo 100.64.0.2,fd45:e4c0:2426::2 Approved ",
                "3 gamma 100.64.0.3,fd45:e4c0:2426::3 Pending ",
            ],
            (await rig.Admin.ListNodesAsync(new ListNodesRequest())).Nodes.Select(n => $"{n.Id} {n.Name} {string.Join(',', n.Addresses)} {n.State} {string.Join(',', n.Tags)}"));
        Assert.Equal(
            [
                "47fe0179bd64 reusable=True ephemeral=False used=False revoked=False tags=home,lab",
                "569d8bb414bd reusable=False ephemeral=False used=True revoked=False tags=",
                "111127f5a2d2 reusable=True ephemeral=True used=False revoked=True tags=ci",
            ],
            (await rig.Admin.ListPreAuthKeysAsync(new ListPreAuthKeysRequest())).Keys.Select(k => $"{k.Id} reusable={k.Reusable} ephemeral={k.Ephemeral} used={k.Used} revoked={k.Revoked} tags={string.Join(',', k.Tags)}"));
        Assert.Equal(["858ef36442b5 revoked=False", "6d6a4e84c307 revoked=False"],
            (await rig.Admin.ListApiKeysAsync(new ListApiKeysRequest())).Keys.Select(k => $"{k.Id} revoked={k.Revoked}"));
        // The new table is there, empty; the old release's pending row is approved as it was (it holds its address).
        Assert.Empty((await rig.Admin.ListAuditAsync(new ListAuditRequest())).Entries);
        Assert.Equal(NodeState.Approved, (await rig.Admin.ApproveNodeAsync(new NodeRef { Node = "gamma" })).State);
        Assert.Equal("nodes approve", Assert.Single((await rig.Admin.ListAuditAsync(new ListAuditRequest())).Entries).Action);

        await using var delta = await rig.JoinAsync("delta", "mpk_47fe0179bd64_-pkKDVtZeXUE-XZ7swmx1GCHpQ5_XG-Z5dn41Adlunk");
        Assert.Equal("100.64.0.4/32", delta.Registration.Addresses[0]);
    }

    /// <summary>
    /// Fixtures/coordinator-schema2.db was written by the release before this change (schema 2, commit a4d327d, the
    /// last one whose store lived in the coordinator's executable): alpha joined with a reusable tagged key, bravo
    /// with a one-off key and was renamed, gamma waited without a key and was approved by its code; an ephemeral key
    /// revoked, a second API key, and the audit log of those admin actions.
    /// </summary>
    [Fact]
    public async Task TheSchema2DataDirectoryKeepsEveryNodeKeyAndAuditEntry()
    {
        await using var rig = await StartFromAsync("coordinator-schema2.db", "mak_767fc727ecec_OywAgl8qyHqIVnztt-erLgVzV-aC7f0zyYWtGqgs53M");

        var challenge = await rig.NewClient().GetChallengeAsync(new GetChallengeRequest());
        Assert.Equal("djjn7+t4jejZUYFZ6UGbC9CqhXMqY6JAoAqR4PkFmR4=", Convert.ToBase64String(challenge.CoordinatorKey.Span));
        Assert.Equal(
            [
                "1 alpha 100.64.0.1,fd07:57fe:81f5::1 Approved home,lab BdyDiQXtNfMEupEuHdn7v8YQxvZjf64UPM6MfYvNZzg=",
                "2 bravo-laptop 100.64.0.2,fd07:57fe:81f5::2 Approved  kpgLx5Ney5HQk0BwZQds6adJvKpfvtt2dERy3LWLBQ4=",
                "3 gamma 100.64.0.3,fd07:57fe:81f5::3 Approved  KYy4Q9157lu5ZPK/pMiDAaMpYIPcBtSVdoYNcdgIrm4=",
            ],
            (await rig.Admin.ListNodesAsync(new ListNodesRequest())).Nodes.Select(n => $"{n.Id} {n.Name} {string.Join(',', n.Addresses)} {n.State} {string.Join(',', n.Tags)} {Convert.ToBase64String(n.NodeKey.Span)}"));
        Assert.Equal(
            [
                "44c100507387 reusable=True ephemeral=False used=False revoked=False tags=home,lab",
                "214366fb8f58 reusable=False ephemeral=False used=True revoked=False tags=",
                "c9ec0ce0601d reusable=True ephemeral=True used=False revoked=True tags=ci",
            ],
            (await rig.Admin.ListPreAuthKeysAsync(new ListPreAuthKeysRequest())).Keys.Select(k => $"{k.Id} reusable={k.Reusable} ephemeral={k.Ephemeral} used={k.Used} revoked={k.Revoked} tags={string.Join(',', k.Tags)}"));
        Assert.Equal(["767fc727ecec revoked=False", "5f0b56c84199 revoked=False"],
            (await rig.Admin.ListApiKeysAsync(new ListApiKeysRequest())).Keys.Select(k => $"{k.Id} revoked={k.Revoked}"));
        Assert.Equal(
            [
                "7 key 767fc727ecec nodes rename bravo-laptop node 2 bravo-laptop (kpgLx5Ney5HQk0BwZQds6adJvKpfvtt2dERy3LWLBQ4=)",
                "6 key 767fc727ecec nodes approve node 3 gamma (KYy4Q9157lu5ZPK/pMiDAaMpYIPcBtSVdoYNcdgIrm4=)",
                "5 key 767fc727ecec apikeys create 5f0b56c84199",
                "4 key 767fc727ecec keys revoke c9ec0ce0601d",
                "3 key 767fc727ecec keys create c9ec0ce0601d reusable ephemeral tags ci",
                "2 key 767fc727ecec keys create 214366fb8f58",
                "1 key 767fc727ecec keys create 44c100507387 reusable tags home,lab",
            ],
            (await rig.Admin.ListAuditAsync(new ListAuditRequest())).Entries.Select(e => $"{e.Id} {e.Actor} {e.Action} {e.Target}"));

        // The second API key still opens the admin API, and the old reusable key still registers nodes after the old ones.
        Assert.Equal(3, (await rig.AdminWithKey("mak_5f0b56c84199_q8PRpGFIXTxZmrdbmi-V3vRUPeb0_Fet_u1OJQz9ZYY").ListNodesAsync(new ListNodesRequest())).Nodes.Count);
        await using var delta = await rig.JoinAsync("delta", "mpk_44c100507387_w2mAqYm8RDCelXCwlsLdrf5W9DoIV7NIRQkVznCSpWw");
        Assert.Equal("100.64.0.4/32", delta.Registration.Addresses[0]);
        Assert.Equal(["home", "lab"], (await rig.Admin.GetNodeAsync(new NodeRef { Node = "delta" })).Tags);
    }

    /// <summary>
    /// Fixtures/coordinator-schema3.db was written by the release before the policy (schema 3, commit 53f6190): that
    /// release's coordinator opened the schema-2 fixture (moving its nodes and keys to the user "default"), then made
    /// the user alice@example.com and a reusable key of hers tagged srv. Schema 4 keeps every node, key and user, her
    /// key still registers a node of hers, and no policy is set.
    /// </summary>
    [Fact]
    public async Task TheSchema3DataDirectoryKeepsEveryNodeKeyAndUser()
    {
        await using var rig = await StartFromAsync("coordinator-schema3.db", "mak_767fc727ecec_OywAgl8qyHqIVnztt-erLgVzV-aC7f0zyYWtGqgs53M");

        Assert.Equal(["default", "alice@example.com"], (await rig.Admin.ListUsersAsync(new ListUsersRequest())).Users.Select(u => u.Name));
        Assert.Equal(["1 alpha default", "2 bravo-laptop default", "3 gamma default"],
            (await rig.Admin.ListNodesAsync(new ListNodesRequest())).Nodes.Select(n => $"{n.Id} {n.Name} {n.User}"));
        Assert.Equal(
            [
                "44c100507387 default tags=home,lab",
                "214366fb8f58 default tags=",
                "c9ec0ce0601d default tags=ci",
                "a15552750474 alice@example.com tags=srv",
            ],
            (await rig.Admin.ListPreAuthKeysAsync(new ListPreAuthKeysRequest())).Keys.Select(k => $"{k.Id} {k.User} tags={string.Join(',', k.Tags)}"));
        Assert.Equal(0u, (await rig.Admin.GetPolicyAsync(new GetPolicyRequest())).Version);

        await using var delta = await rig.JoinAsync("delta", "mpk_a15552750474_A1YpXu3e-quaIgoawiN6qYVPmK_bRS7lkhZtfoWFDpg");
        Assert.Equal("100.64.0.4/32", delta.Registration.Addresses[0]);
        var node = await rig.Admin.GetNodeAsync(new NodeRef { Node = "delta" });
        Assert.Equal(("alice@example.com", "srv"), (node.User, string.Join(',', node.Tags)));
    }

    /// <summary>Schema 3 adds users: what the previous release stored (the schema-2 fixture) belongs to the user "default".</summary>
    [Fact]
    public async Task TheSchema2DatabaseGivesEveryKeyAndNodeToTheDefaultUser()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mesh-users-{Guid.NewGuid():N}.db");
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "coordinator-schema2.db"), path);
        try
        {
            await using var store = Mesh.Coordinator.Store.SqliteStore.Open(path);
            var user = Assert.Single(await store.LoadUsersAsync());
            Assert.Equal("default", user.Name);
            Assert.All(await store.LoadNodesAsync(), node => Assert.Equal(user.Id, node.UserId));
            Assert.All(await store.LoadPreAuthKeysAsync(), key => Assert.Equal(user.Id, key.UserId));
            Assert.Equal(3, (await store.LoadNodesAsync()).Count);

            var alice = await store.InsertUserAsync(new Mesh.Coordinator.Store.UserRecord { Name = "alice", Created = DateTime.UtcNow });
            await store.RenameUserAsync(alice, "alice@example.com");
            Assert.Equal(["default", "alice@example.com"], (await store.LoadUsersAsync()).Select(u => u.Name));
            await store.DeleteUserAsync(alice);
            Assert.Equal(["default"], (await store.LoadUsersAsync()).Select(u => u.Name));
            await PoliciesAreVersionedAsync(store);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            File.Delete(path);
        }
    }

    /// <summary>
    /// A PostgreSQL database of schema 2 (the previous release's tables, as its migration made them, with a key and a
    /// node in them) moves to schema 4 with both owned by the user "default", and a table for the policy's versions.
    /// </summary>
    [Fact]
    public async Task ASchema2PostgresDatabaseGivesItsKeysAndNodesToTheDefaultUser()
    {
        using var postgres = Mesh.Tests.Shared.PostgresServer.Start();
        await using (var connection = new Npgsql.NpgsqlConnection(postgres.ConnectionString))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = """
                CREATE TABLE meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
                CREATE TABLE preauth_keys (
                    id TEXT PRIMARY KEY, hash BYTEA NOT NULL, reusable BIGINT NOT NULL, ephemeral BIGINT NOT NULL,
                    tags TEXT NOT NULL, created BIGINT NOT NULL, expiration BIGINT, used BIGINT NOT NULL, revoked BIGINT NOT NULL);
                CREATE TABLE api_keys (id TEXT PRIMARY KEY, hash BYTEA NOT NULL, created BIGINT NOT NULL, revoked BIGINT NOT NULL);
                CREATE TABLE nodes (
                    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, node_key BYTEA NOT NULL UNIQUE, name TEXT NOT NULL UNIQUE,
                    ipv4 TEXT NOT NULL UNIQUE, ipv6 TEXT NOT NULL UNIQUE, state BIGINT NOT NULL, ephemeral BIGINT NOT NULL,
                    tags TEXT NOT NULL, preauth_key_id TEXT, session_hash BYTEA, created BIGINT NOT NULL, last_seen BIGINT);
                CREATE TABLE audit (
                    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, source TEXT NOT NULL);
                INSERT INTO meta (key, value) VALUES ('schema_version', '\x02000000');
                INSERT INTO preauth_keys VALUES ('44c100507387', '\x00', 1, 0, 'lab', 1764000000, NULL, 0, 0);
                INSERT INTO nodes (node_key, name, ipv4, ipv6, state, ephemeral, tags, preauth_key_id, created)
                    VALUES ('\x0102', 'alpha', '100.64.0.1', 'fd07::1', 1, 0, 'lab', '44c100507387', 1764000000);
                """;
            await command.ExecuteNonQueryAsync();
        }
        await using var store = await Mesh.Coordinator.Store.PostgresStore.OpenAsync(postgres.ConnectionString);
        var user = Assert.Single(await store.LoadUsersAsync());
        Assert.Equal("default", user.Name);
        Assert.Equal(user.Id, Assert.Single(await store.LoadNodesAsync()).UserId);
        Assert.Equal(user.Id, Assert.Single(await store.LoadPreAuthKeysAsync()).UserId);
        await PoliciesAreVersionedAsync(store);
    }

    /// <summary>Schema 4 adds the policy's versions: none in an upgraded database, then each set is the next version.</summary>
    private static async Task PoliciesAreVersionedAsync(Mesh.Coordinator.Store.ICoordinatorStore store)
    {
        Assert.Null(await store.LoadPolicyAsync());
        Assert.Equal(1, await store.InsertPolicyAsync("{}", DateTime.UtcNow, "apikey a"));
        Assert.Equal(2, await store.InsertPolicyAsync("{ \"acls\": [] }", DateTime.UtcNow, "apikey b"));
        var current = await store.LoadPolicyAsync();
        Assert.Equal((2L, "{ \"acls\": [] }", "apikey b"), (current!.Version, current.Text, current.Actor));
    }
}
