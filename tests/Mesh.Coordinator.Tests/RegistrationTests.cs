using Google.Protobuf;
using Grpc.Core;
using Mesh.Control;
using Mesh.Protos.V1;
using Mesh.WireGuard.Keys;

namespace Mesh.Coordinator.Tests;

public sealed class RegistrationTests : IAsyncLifetime
{
    private CoordinatorRig _rig = null!;

    public async Task InitializeAsync() => _rig = await CoordinatorRig.StartAsync();

    public async Task DisposeAsync() => await _rig.DisposeAsync();

    private static async Task<StatusCode> CodeOf(Func<Task> call)
    {
        var ex = await Assert.ThrowsAsync<RpcException>(call);
        return ex.StatusCode;
    }

    [Fact]
    public async Task OneOffKeyRegistersOnceWithStableDistinctAddresses()
    {
        var key = await _rig.CreateKeyAsync();
        var first = new TestAgent(_rig, "laptop");
        var response = await first.RegisterAsync(key);
        Assert.Equal(RegistrationState.Approved, response.State);
        Assert.Equal("laptop", response.Name);
        Assert.StartsWith("100.64.", response.Addresses[0]);
        Assert.EndsWith("/32", response.Addresses[0]);
        Assert.StartsWith("fd", response.Addresses[1]);
        Assert.NotEmpty(response.SessionToken);

        var second = new TestAgent(_rig, "laptop");
        Assert.Equal(StatusCode.PermissionDenied, await CodeOf(() => second.RegisterAsync(key)));
        Assert.Single((await _rig.Admin.ListNodesAsync(new ListNodesRequest())).Nodes);
        Assert.True((await _rig.Admin.ListPreAuthKeysAsync(new ListPreAuthKeysRequest())).Keys.Single().Used);
    }

    [Fact]
    public async Task ReusableKeyWithTagsRegistersManyWithUniqueNamesAndAddresses()
    {
        var key = await _rig.CreateKeyAsync(reusable: true, tags: ["server", "home"]);
        var responses = new List<RegisterResponse>();
        for (var i = 0; i < 5; i++) responses.Add(await new TestAgent(_rig, "Home Server.lan").RegisterAsync(key));
        Assert.Equal(["home-server", "home-server-2", "home-server-3", "home-server-4", "home-server-5"], responses.Select(r => r.Name));
        Assert.Equal(5, responses.SelectMany(r => r.Addresses).Distinct().Count() / 2);
        var nodes = (await _rig.Admin.ListNodesAsync(new ListNodesRequest())).Nodes;
        Assert.All(nodes, n => Assert.Equal(["server", "home"], n.Tags));
    }

    [Fact]
    public async Task LoggingInAgainKeepsTheNodeAndRotatesTheToken()
    {
        var key = await _rig.CreateKeyAsync();
        var agent = new TestAgent(_rig, "box");
        var first = await agent.RegisterAsync(key);
        var again = await agent.RegisterAsync("");
        Assert.Equal(first.NodeId, again.NodeId);
        Assert.Equal(first.Addresses, again.Addresses);
        Assert.NotEqual(first.SessionToken, again.SessionToken);
    }

    [Fact]
    public async Task WithoutAKeyTheNodeWaitsForApproval()
    {
        var agent = new TestAgent(_rig, "pending-box");
        var pending = await agent.RegisterAsync("");
        Assert.Equal(RegistrationState.Pending, pending.State);
        Assert.Empty(pending.SessionToken);
        Assert.Matches("^[A-Z0-9]{4}-[A-Z0-9]{4}$", pending.ApprovalCode);
        // Waiting costs no row and no address: it is in the queue, and approving it by name is refused (a squatter could take any name).
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(async () => await _rig.Admin.GetNodeAsync(new NodeRef { Node = "pending-box" }))).StatusCode);
        var waiting = Assert.Single((await _rig.Admin.ListPendingNodesAsync(new ListPendingNodesRequest())).Nodes);
        Assert.Equal(("pending-box", pending.ApprovalCode), (waiting.Hostname, waiting.Code));
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(async () => await _rig.Admin.ApproveNodeAsync(new NodeRef { Node = "pending-box" }))).StatusCode);

        var node = await _rig.Admin.ApproveNodeAsync(new NodeRef { Node = pending.ApprovalCode.ToLowerInvariant() });
        Assert.Equal(NodeState.Approved, node.State);
        Assert.Empty((await _rig.Admin.ListPendingNodesAsync(new ListPendingNodesRequest())).Nodes);
        var approved = await agent.RegisterAsync("");
        Assert.Equal(RegistrationState.Approved, approved.State);
        Assert.NotEmpty(approved.SessionToken);
    }

    [Fact]
    public async Task ExpiredAndRevokedPreAuthKeysAreRefused()
    {
        var expiring = await _rig.CreateKeyAsync(reusable: true, expirationSeconds: 1);
        await Task.Delay(1200);
        Assert.Equal(StatusCode.PermissionDenied, await CodeOf(() => new TestAgent(_rig, "late").RegisterAsync(expiring)));

        var revoked = await _rig.CreateKeyAsync(reusable: true);
        var id = Secrets.IdOf(revoked, Secrets.PreAuthKeyPrefix)!;
        await _rig.Admin.RevokePreAuthKeyAsync(new RevokePreAuthKeyRequest { Id = id });
        Assert.Equal(StatusCode.PermissionDenied, await CodeOf(() => new TestAgent(_rig, "revoked").RegisterAsync(revoked)));

        var forged = revoked[..^4] + "AAAA";
        Assert.Equal(StatusCode.PermissionDenied, await CodeOf(() => new TestAgent(_rig, "forged").RegisterAsync(forged)));
        Assert.Empty((await _rig.Admin.ListNodesAsync(new ListNodesRequest())).Nodes);
    }

    [Fact]
    public async Task ForgedProofIsRefusedAndNothingIsStored()
    {
        var key = await _rig.CreateKeyAsync();
        var client = _rig.NewClient();
        var challenge = await client.GetChallengeAsync(new GetChallengeRequest());
        var victim = PrivateKey.Generate().PublicKey;
        var attacker = PrivateKey.Generate();
        // A proof made with another private key than the one of the node key claimed.
        var proof = RegistrationProof.Compute(attacker, new PublicKey(challenge.CoordinatorKey.Span), challenge.Nonce.Span, key, "evil");
        var request = new RegisterRequest { NodeKey = ByteString.CopyFrom(victim.Span), AuthKey = key, Hostname = "evil", Nonce = challenge.Nonce, Proof = ByteString.CopyFrom(proof) };
        Assert.Equal(StatusCode.Unauthenticated, await CodeOf(() => client.RegisterAsync(request).ResponseAsync));
        Assert.Empty((await _rig.Admin.ListNodesAsync(new ListNodesRequest())).Nodes);
        Assert.False((await _rig.Admin.ListPreAuthKeysAsync(new ListPreAuthKeysRequest())).Keys.Single().Used);
    }

    [Fact]
    public async Task ReplayedRegistrationIsRefused()
    {
        var key = await _rig.CreateKeyAsync(reusable: true);
        var client = _rig.NewClient();
        var node = PrivateKey.Generate();
        var challenge = await client.GetChallengeAsync(new GetChallengeRequest());
        var proof = RegistrationProof.Compute(node, new PublicKey(challenge.CoordinatorKey.Span), challenge.Nonce.Span, key, "box");
        var request = new RegisterRequest { NodeKey = ByteString.CopyFrom(node.PublicKey.Span), AuthKey = key, Hostname = "box", Nonce = challenge.Nonce, Proof = ByteString.CopyFrom(proof) };
        Assert.Equal(RegistrationState.Approved, (await client.RegisterAsync(request)).State);
        Assert.Equal(StatusCode.Unauthenticated, await CodeOf(() => client.RegisterAsync(request).ResponseAsync));
    }

    [Fact]
    public async Task MalformedRequestsAreInvalidArguments()
    {
        var client = _rig.NewClient();
        var challenge = await client.GetChallengeAsync(new GetChallengeRequest());
        var good = new RegisterRequest { NodeKey = ByteString.CopyFrom(new byte[32]), Nonce = challenge.Nonce, Proof = ByteString.CopyFrom(new byte[32]) };
        foreach (var bad in new[]
        {
            new RegisterRequest(good) { NodeKey = ByteString.CopyFrom(new byte[31]) },
            new RegisterRequest(good) { Nonce = ByteString.CopyFrom(new byte[5]) },
            new RegisterRequest(good) { Proof = ByteString.Empty },
            new RegisterRequest(good) { AuthKey = "not-a-key" },
            new RegisterRequest(good) { Hostname = new string('x', 300) },
        })
        {
            Assert.Equal(StatusCode.InvalidArgument, await CodeOf(() => client.RegisterAsync(bad).ResponseAsync));
        }
        Assert.Empty((await _rig.Admin.ListNodesAsync(new ListNodesRequest())).Nodes);
    }
}
