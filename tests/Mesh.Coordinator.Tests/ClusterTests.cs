using Grpc.Core;
using Mesh.Protos.V1;
using Mesh.Tests.Shared;

namespace Mesh.Coordinator.Tests;

/// <summary>
/// Three replicas in this process over a PostgreSQL of the test's own: every replica serves the whole API, and
/// a change made through one reaches agents connected to the others; the database going away fails writes with
/// UNAVAILABLE and leaves the streams up.
/// </summary>
public sealed class ClusterTests : IAsyncLifetime
{
    /// <summary>
    /// How long a change may take to reach another replica's agents here. The test asserts that it arrives, not how
    /// fast (the benchmark measures that): the whole suite runs at once on two cores, three silos in this process
    /// among them, and a hub repairs what it missed only at its next attach.
    /// </summary>
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(30);
    private readonly List<CoordinatorRig> _replicas = new();
    private PostgresServer _postgres = null!;

    public async Task InitializeAsync()
    {
        _postgres = PostgresServer.Start();
        var first = await CoordinatorRig.StartAsync(postgres: _postgres.ConnectionString);
        _replicas.Add(first);
        for (var i = 1; i < 3; i++) _replicas.Add(await CoordinatorRig.StartAsync(postgres: _postgres.ConnectionString, adminKey: first.AdminKey));
    }

    public async Task DisposeAsync()
    {
        foreach (var replica in _replicas) await replica.DisposeAsync();
        _postgres.Dispose();
    }

    [Fact]
    public async Task EveryReplicaServesTheWholeMesh()
    {
        var key = await _replicas[0].CreateKeyAsync(reusable: true, tags: "lab");
        await using var x = await _replicas[1].JoinAsync("x", key, TestAgent.Candidates("192.0.2.1:1000"));
        await using var y = await _replicas[2].JoinAsync("y", key, TestAgent.Candidates("192.0.2.2:2000"));
        await Eventually.HoldsAsync(() => x.Read(v => v.FindPeer(y.NodeKey)) is { Online: true }, Prompt, "x (on replica 1) sees y (on replica 2) online");
        await Eventually.HoldsAsync(() => y.Read(v => v.FindPeer(x.NodeKey)) is { Online: true }, Prompt, "y sees x online");

        // Each replica announces its relay under an id of its own, with addresses an agent of any replica can reach.
        await Eventually.HoldsAsync(() => x.Read(v => v.Relays.Count) == 3, Prompt, "x's map lists the three replicas' relays");
        Assert.Equal(3, x.Read(v => v.Relays.Select(r => r.Id).Distinct().Count()));
        Assert.All(x.Read(v => v.Relays.ToList()), r => Assert.StartsWith("http://127.0.0.1:", r.TcpUrl));
        foreach (var replica in _replicas) Assert.Equal(3, (await replica.Admin.ListRelaysAsync(new ListRelaysRequest())).Relays.Count);
        // Every replica's relay serves both nodes, whichever replica holds their streams, and still does after
        // the hubs attach again (each takes the shared full map and the deltas since).
        await Task.Delay(Cluster.PublisherGrain.HubAttachInterval * 2);
        foreach (var replica in _replicas)
        {
            Assert.True(replica.Host.Hub.IsMember(x.Key.PublicKey), "x is a member at every replica's relay");
            Assert.True(replica.Host.Hub.IsMember(y.Key.PublicKey), "y is a member at every replica's relay");
        }

        foreach (var replica in _replicas)
        {
            Assert.Equal(["x", "y"], (await replica.Admin.ListNodesAsync(new ListNodesRequest())).Nodes.Select(n => n.Name).OrderBy(n => n));
            Assert.Single((await replica.Admin.ListPreAuthKeysAsync(new ListPreAuthKeysRequest())).Keys);
        }

        await _replicas[0].Admin.RenameNodeAsync(new RenameNodeRequest { Node = "y", NewName = "yankee" });
        await Eventually.HoldsAsync(() => x.Read(v => v.FindPeer(y.NodeKey)?.Name) == "yankee", Prompt, "a rename on replica 0 reaches x on replica 1");

        await y.UpdateEndpointsAsync(TestAgent.Candidates("198.51.100.9:9999"));
        await Eventually.HoldsAsync(() => x.Read(v => v.FindPeer(y.NodeKey)?.Endpoints.Candidates.Single().Address) == "198.51.100.9:9999", Prompt,
            "y's endpoints (sent to replica 2) reach x on replica 1");

        await _replicas[2].Admin.DeleteNodeAsync(new NodeRef { Node = "x" });
        await Eventually.HoldsAsync(() => y.Read(v => v.FindPeer(x.NodeKey)) is null, Prompt, "a delete on replica 2 removes x from y's map");
        Assert.Equal(["yankee"], (await _replicas[1].Admin.ListNodesAsync(new ListNodesRequest())).Nodes.Select(n => n.Name));
    }

    [Fact]
    public async Task ASiloPortTakesOnlyAPeerWithTheClusterCertificate()
    {
        // A foreign client (no certificate) and a foreign silo (a certificate of its own) are refused at the TLS
        // handshake, so neither reaches Orleans to call a grain; the cluster's own certificate is taken.
        await using var store = await Store.PostgresStore.OpenAsync(_postgres.ConnectionString);
        using var cluster = await Hosting.SelfSignedCertificate.LoadOrCreateAsync(store, Hosting.SelfSignedCertificate.ClusterKey, []);
        using var key = System.Security.Cryptography.ECDsa.Create();
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=mesh-coordinator-cluster", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        using var foreign = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        Assert.False(await HandshakeHoldsAsync(null));
        Assert.False(await HandshakeHoldsAsync(foreign));
        Assert.True(await HandshakeHoldsAsync(cluster));
    }

    /// <summary>Whether a TLS client with this certificate gets a connection to replica 0's silo port that stays open.</summary>
    private async Task<bool> HandshakeHoldsAsync(System.Security.Cryptography.X509Certificates.X509Certificate2? certificate)
    {
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(System.Net.IPAddress.Loopback, _replicas[0].SiloPort!.Value);
        using var tls = new System.Net.Security.SslStream(tcp.GetStream(), false, (_, _, _, _) => true);
        try
        {
            await tls.AuthenticateAsClientAsync(new System.Net.Security.SslClientAuthenticationOptions
            {
                TargetHost = "mesh-coordinator-cluster",
                ClientCertificates = certificate is null ? null : [certificate],
            });
            // TLS 1.3 finishes the client's side before the server has checked the client's certificate: a refusal
            // then comes as the connection closing under the first read, and a taken connection as the silo's
            // first bytes (its preamble).
            return await tls.ReadAsync(new byte[1]) > 0;
        }
        catch (Exception ex) when (ex is System.Security.Authentication.AuthenticationException or IOException)
        {
            return false;
        }
    }

    [Fact]
    public async Task AnAgentThatMovesToAnotherReplicaResumesFromItsSerial()
    {
        var key = await _replicas[0].CreateKeyAsync(reusable: true);
        await using var x = await _replicas[1].JoinAsync("x", key, TestAgent.Candidates("192.0.2.1:1000"));
        await using var y = await _replicas[2].JoinAsync("y", key, TestAgent.Candidates("192.0.2.2:2000"));
        await Eventually.HoldsAsync(() => x.Read(v => v.FindPeer(y.NodeKey)) is { Online: true }, Prompt, "x sees y");
        var serial = x.Serial;
        await x.DisconnectAsync();
        await y.UpdateEndpointsAsync(TestAgent.Candidates("198.51.100.9:9999"));

        await using var moved = x.MovedTo(_replicas[0]);
        await moved.ConnectAsync(TestAgent.Candidates("192.0.2.1:1000"), serial);
        await Eventually.HoldsAsync(() => moved.Read(v => v.FindPeer(y.NodeKey)?.Endpoints.Candidates.Single().Address) == "198.51.100.9:9999", Prompt,
            "the change made while x was away reaches it on its new replica");
        Assert.Equal(1, moved.Read(v => v.FullMapsReceived));
        Assert.True(moved.Serial > serial);
    }

    [Fact]
    public async Task WritesFailWithUnavailableWhileTheDatabaseIsDownAndStreamsStayUp()
    {
        var key = await _replicas[0].CreateKeyAsync(reusable: true);
        await using var x = await _replicas[1].JoinAsync("x", key, TestAgent.Candidates("192.0.2.1:1000"));
        await using var y = await _replicas[2].JoinAsync("y", key, TestAgent.Candidates("192.0.2.2:2000"));
        await Eventually.HoldsAsync(() => x.Read(v => v.FindPeer(y.NodeKey)) is { Online: true }, Prompt, "x sees y");

        _postgres.Stop();
        var refused = await Assert.ThrowsAsync<RpcException>(() => _replicas[0].Admin.CreatePreAuthKeyAsync(new CreatePreAuthKeyRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
        Assert.DoesNotContain('\n', refused.Status.Detail);
        Assert.Contains("PostgreSQL", refused.Status.Detail);
        var rename = await Assert.ThrowsAsync<RpcException>(() => _replicas[2].Admin.RenameNodeAsync(new RenameNodeRequest { Node = "x", NewName = "xray" }).ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, rename.StatusCode);

        // What needs no write still flows: the streams stay up and endpoint changes reach peers.
        await y.UpdateEndpointsAsync(TestAgent.Candidates("198.51.100.9:9999"));
        await Eventually.HoldsAsync(() => x.Read(v => v.FindPeer(y.NodeKey)?.Endpoints.Candidates.Single().Address) == "198.51.100.9:9999", Prompt, "y's endpoints reach x");
        Assert.False(x.StreamEnded);
        Assert.False(y.StreamEnded);
        Assert.Equal("x", (await _replicas[0].Admin.GetNodeAsync(new NodeRef { Node = "x" })).Name);

        _postgres.Start();
        await Eventually.HoldsAsync(async () =>
        {
            try
            {
                await _replicas[0].Admin.RenameNodeAsync(new RenameNodeRequest { Node = "x", NewName = "xray" });
                return true;
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.Unavailable)
            {
                return false;
            }
        }, Prompt, "writes work again once the database is back");
        await Eventually.HoldsAsync(() => y.Read(v => v.FindPeer(x.NodeKey)?.Name) == "xray", Prompt, "the rename reaches y");
        await using var z = await _replicas[1].JoinAsync("z", key);
        Assert.Equal(3, (await _replicas[2].Admin.ListNodesAsync(new ListNodesRequest())).Nodes.Count);
    }
}
