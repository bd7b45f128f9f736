using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Mesh.Rpc.Client;
using Mesh.Rpc.Server;
using Mesh.Rpc.Echo;
using Mesh.Rpc.Echo.V1;

namespace Mesh.Rpc.Tests;

/// <summary>Our client against our server over real HTTP/2 on loopback.</summary>
public sealed class TransportTests(EchoServerFixture fixture) : EchoClientConformance, IClassFixture<EchoServerFixture>
{
    protected override Echo.V1.Echo.EchoClient Client => fixture.Client;
    protected override CallInvoker Invoker => fixture.Channel.CreateCallInvoker();
    protected override Task<bool> ServerSawCancellationAsync(string method) => fixture.Service.WaitForCancellationAsync(method, TimeSpan.FromSeconds(10));

    [Fact]
    public void BlockingUnaryWorks()
    {
        Assert.Equal("sync", Client.Unary(new EchoRequest { Message = "sync" }).Message);
    }

    [Fact]
    public async Task ErrorAfterStreamedMessagesArrivesInTrailers()
    {
        using var call = Client.ServerStream(new EchoRequest { Repeat = 3, FailCode = (int)StatusCode.Aborted, FailMessage = "stop" });
        var count = 0;
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await foreach (var _ in call.ResponseStream.ReadAllAsync()) count++;
        });
        Assert.Equal(3, count);
        Assert.Equal(StatusCode.Aborted, ex.StatusCode);
        Assert.Equal("stop", ex.Status.Detail);
    }

    [Fact]
    public async Task AlreadyPassedDeadlineFailsWithoutSending()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
            await Client.UnaryAsync(new EchoRequest(), deadline: DateTime.UtcNow.AddSeconds(-1)));
        Assert.Equal(StatusCode.DeadlineExceeded, ex.StatusCode);
    }

    [Fact]
    public async Task ServerEnforcesDeadlineSentInHeader()
    {
        // A raw request with grpc-timeout and no client-side timer: the server must end the call itself.
        using var http = new HttpClient(new SocketsHttpHandler()) { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using var request = RawCalls.Request(fixture.Address, "/mesh.test.v1.Echo/Unary", RawCalls.Frame(new EchoRequest { DelayMs = 5000 }.ToByteArray()));
        request.Headers.TryAddWithoutValidation("grpc-timeout", "100m");
        var started = DateTime.UtcNow;
        using var response = await http.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(4));
        Assert.Equal(((int)StatusCode.DeadlineExceeded).ToString(), RawCalls.GrpcStatus(response));
    }

    [Fact]
    public async Task OversizedRequestIsRefusedBeforeSendingWhenTheClientHasALimit()
    {
        using var channel = GrpcChannel.ForAddress(fixture.Address, new GrpcChannelOptions { MaxSendMessageSize = 1024 });
        var client = new Echo.V1.Echo.EchoClient(channel);
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
            await client.UnaryAsync(new EchoRequest { Payload = ByteString.CopyFrom(new byte[2048]) }));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
    }

    [Fact]
    public async Task LargeMessagesUnderTheLimitPass()
    {
        var payload = new byte[3 * 1024 * 1024];
        Random.Shared.NextBytes(payload);
        var response = await Client.UnaryAsync(new EchoRequest { Payload = ByteString.CopyFrom(payload) });
        Assert.Equal(payload, response.Payload.ToByteArray());
    }

    [Fact]
    public async Task GzipBothWays()
    {
        await using var server = new GrpcServer(new GrpcServerOptions { CompressResponses = true })
            .AddService(Echo.V1.Echo.BindService(new EchoService()))
            .Listen(new IPEndPoint(IPAddress.Loopback, 0));
        await server.StartAsync();
        using var channel = GrpcChannel.ForAddress(server.Addresses[0], new GrpcChannelOptions { CompressRequests = true });
        var client = new Echo.V1.Echo.EchoClient(channel);
        var payload = ByteString.CopyFrom(new byte[100_000]);
        using var call = client.UnaryAsync(new EchoRequest { Payload = payload });
        var response = await call;
        Assert.Equal(payload, response.Payload);
        Assert.Equal("gzip", (await call.ResponseHeadersAsync).GetValue("grpc-encoding") ?? "gzip");
    }

    [Fact]
    public async Task UnreachableServerIsUnavailable()
    {
        using var channel = GrpcChannel.ForAddress("http://127.0.0.1:1");
        var client = new Echo.V1.Echo.EchoClient(channel);
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await client.UnaryAsync(new EchoRequest()));
        Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
    }

    [Fact]
    public async Task UnixSocketTransport()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mesh-rpc-{Guid.NewGuid():N}.sock");
        await using var server = new GrpcServer().AddService(Echo.V1.Echo.BindService(new EchoService())).ListenUnixSocket(path);
        await server.StartAsync();
        using var channel = GrpcChannel.ForUnixSocket(path);
        Assert.Equal("unix", (await new Echo.V1.Echo.EchoClient(channel).UnaryAsync(new EchoRequest { Message = "unix" })).Message);
        File.Delete(path);
    }

    [Fact]
    public async Task ManyConcurrentStreamsOnOneChannel()
    {
        var tasks = Enumerable.Range(0, 200).Select(async i =>
        {
            using var call = Client.ServerStream(new EchoRequest { Message = "c" + i, Repeat = 5 });
            var count = 0;
            await foreach (var response in call.ResponseStream.ReadAllAsync())
            {
                Assert.Equal("c" + i, response.Message);
                count++;
            }
            return count;
        });
        Assert.All(await Task.WhenAll(tasks), count => Assert.Equal(5, count));
    }
}
