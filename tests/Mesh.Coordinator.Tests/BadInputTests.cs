using System.Net;
using Grpc.Core;
using Mesh.Protos.V1;

namespace Mesh.Coordinator.Tests;

public sealed class BadInputTests : IAsyncLifetime
{
    private CoordinatorRig _rig = null!;
    private TestAgent _agent = null!;

    public async Task InitializeAsync()
    {
        _rig = await CoordinatorRig.StartAsync();
        _agent = new TestAgent(_rig, "a");
        await _agent.RegisterAsync(await _rig.CreateKeyAsync());
    }

    public async Task DisposeAsync() => await _rig.DisposeAsync();

    private async Task<StatusCode> SyncWith(string? token, params SyncRequest[] messages)
    {
        using var call = _rig.NewClient(token).Sync();
        try
        {
            foreach (var message in messages) await call.RequestStream.WriteAsync(message);
        }
        catch (RpcException)
        {
            // The server refused before the messages were written: the write fails, and the call's status follows.
        }
        try
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None)) { }
            return StatusCode.OK;
        }
        catch (RpcException ex)
        {
            return ex.StatusCode;
        }
    }

    [Fact]
    public async Task SyncWithoutOrWithAWrongTokenIsUnauthenticated()
    {
        Assert.Equal(StatusCode.Unauthenticated, await SyncWith(null, new SyncRequest { Hello = new SyncHello() }));
        Assert.Equal(StatusCode.Unauthenticated, await SyncWith("mst_000000000000_forgedforgedforgedforgedforgedforgedforged", new SyncRequest { Hello = new SyncHello() }));
    }

    [Fact]
    public async Task SyncThatSendsGarbageIsInvalidArgumentAndChangesNothing()
    {
        var token = _agent.Registration.SessionToken;
        Assert.Equal(StatusCode.InvalidArgument, await SyncWith(token, new SyncRequest { Endpoints = new Endpoints() }));
        Assert.Equal(StatusCode.InvalidArgument, await SyncWith(token, new SyncRequest { Hello = new SyncHello { Endpoints = TestAgent.Candidates("not an address") } }));
        Assert.Equal(StatusCode.InvalidArgument, await SyncWith(token, new SyncRequest { Hello = await _agent.HelloAsync() }, new SyncRequest { Connect = new ConnectRequest() }));
        Assert.Equal(StatusCode.InvalidArgument, await SyncWith(token, new SyncRequest { Hello = await _agent.HelloAsync() }, new SyncRequest { Hello = new SyncHello() }));
        Assert.Equal(StatusCode.InvalidArgument, await SyncWith(token, new SyncRequest { Hello = await _agent.HelloAsync() },
            new SyncRequest { Endpoints = TestAgent.Candidates(Enumerable.Range(1, 17).Select(i => $"192.0.2.1:{i}").ToArray()) }));
        var node = await _rig.Admin.GetNodeAsync(new NodeRef { Node = "a" });
        Assert.Empty(node.Endpoints.Candidates);
    }

    [Fact]
    public async Task SyncFrameThatIsNotProtobufIsInvalidArgument()
    {
        using var http = new HttpClient(new SocketsHttpHandler());
        var frame = new byte[] { 0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff };
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_rig.Address, "/mesh.v1.Coordinator/Sync"))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(frame) { Headers = { ContentType = new("application/grpc") } },
        };
        request.Headers.TryAddWithoutValidation("authorization", "Bearer " + _agent.Registration.SessionToken);
        using var response = await http.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();
        var status = response.TrailingHeaders.NonValidated.TryGetValues("grpc-status", out var t) ? t.ToString() : response.Headers.GetValues("grpc-status").Single();
        Assert.Equal(((int)StatusCode.InvalidArgument).ToString(), status);
    }

    [Fact]
    public async Task AdminCallsNeedAValidKey()
    {
        Assert.Equal(StatusCode.Unauthenticated, (await Assert.ThrowsAsync<RpcException>(() => _rig.AdminWithKey(null).ListNodesAsync(new ListNodesRequest()).ResponseAsync)).StatusCode);
        Assert.Equal(StatusCode.Unauthenticated, (await Assert.ThrowsAsync<RpcException>(() => _rig.AdminWithKey("mak_000000000000_" + new string('x', 43)).ListNodesAsync(new ListNodesRequest()).ResponseAsync)).StatusCode);
        Assert.Equal(StatusCode.Unauthenticated, (await Assert.ThrowsAsync<RpcException>(() => _rig.AdminWithKey(_agent.Registration.SessionToken).ListNodesAsync(new ListNodesRequest()).ResponseAsync)).StatusCode);

        var created = await _rig.Admin.CreateApiKeyAsync(new CreateApiKeyRequest());
        var second = _rig.AdminWithKey(created.Secret);
        Assert.Single((await second.ListNodesAsync(new ListNodesRequest())).Nodes);
        await _rig.Admin.RevokeApiKeyAsync(new KeyRef { Id = created.Key.Id });
        Assert.Equal(StatusCode.Unauthenticated, (await Assert.ThrowsAsync<RpcException>(() => second.ListNodesAsync(new ListNodesRequest()).ResponseAsync)).StatusCode);
    }

    [Fact]
    public async Task AdminRefusesBadArgumentsWithTheRightStatus()
    {
        async Task<StatusCode> Code<T>(AsyncUnaryCall<T> call) => (await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync)).StatusCode;
        Assert.Equal(StatusCode.NotFound, await Code(_rig.Admin.GetNodeAsync(new NodeRef { Node = "nobody" })));
        Assert.Equal(StatusCode.InvalidArgument, await Code(_rig.Admin.RenameNodeAsync(new RenameNodeRequest { Node = "a", NewName = "Bad Name!" })));
        await new TestAgent(_rig, "b").RegisterAsync(await _rig.CreateKeyAsync());
        Assert.Equal(StatusCode.AlreadyExists, await Code(_rig.Admin.RenameNodeAsync(new RenameNodeRequest { Node = "a", NewName = "b" })));
        Assert.Equal(StatusCode.InvalidArgument, await Code(_rig.Admin.CreatePreAuthKeyAsync(new CreatePreAuthKeyRequest { ExpirationSeconds = -5 })));
        Assert.Equal(StatusCode.InvalidArgument, await Code(_rig.Admin.CreatePreAuthKeyAsync(new CreatePreAuthKeyRequest { Tags = { "bad tag" } })));
        Assert.Equal(StatusCode.NotFound, await Code(_rig.Admin.RevokePreAuthKeyAsync(new RevokePreAuthKeyRequest { Id = "nope" })));
        var only = (await _rig.Admin.ListApiKeysAsync(new ListApiKeysRequest())).Keys.Single();
        Assert.Equal(StatusCode.FailedPrecondition, await Code(_rig.Admin.RevokeApiKeyAsync(new KeyRef { Id = only.Id })));
        Assert.Equal("a", (await _rig.Admin.GetNodeAsync(new NodeRef { Node = "a" })).Name);
    }
}
