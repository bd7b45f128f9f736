using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Net.Compression;
using Mesh.Transport.Echo;
using Mesh.Transport.Echo.V1;

namespace Mesh.Transport.Tests;

/// <summary>The production channel against the production endpoint over real HTTP/2 on loopback.</summary>
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
        await using var server = await EchoHost.StartTcpAsync(configure: options => options.ResponseCompressionAlgorithm = "gzip");
        using var channel = GrpcChannels.ForAddress(server.Address!, new HttpConnector(null), Timeout.InfiniteTimeSpan);
        var client = new Echo.V1.Echo.EchoClient(channel);
        var payload = ByteString.CopyFrom(new byte[100_000]);
        // The client compresses this request; the server decompresses it and compresses its answer.
        var response = await client.UnaryAsync(new EchoRequest { Payload = payload }, new Metadata { { "grpc-internal-encoding-request", "gzip" } });
        Assert.Equal(payload, response.Payload);

        // Grpc.Net.Client hides grpc-* headers, so see the compressed answer on the wire.
        using var http = RawCalls.CreateClient();
        var request = RawCalls.Request(server.Address!, "/mesh.test.v1.Echo/Unary", RawCalls.Frame(new EchoRequest { Payload = payload }.ToByteArray()));
        request.Headers.TryAddWithoutValidation("grpc-accept-encoding", "gzip");
        using var raw = await http.SendAsync(request);
        var body = await raw.Content.ReadAsByteArrayAsync();
        Assert.Equal("gzip", raw.Headers.GetValues("grpc-encoding").Single());
        Assert.Equal(1, body[0]);
        Assert.True(body.Length < 10_000, $"a compressed answer of {body.Length} bytes");
    }

    [Fact]
    public async Task UnreachableServerIsUnavailable()
    {
        using var channel = GrpcChannels.ForAddress(new Uri("http://127.0.0.1:1"), new HttpConnector(null), Timeout.InfiniteTimeSpan);
        var client = new Echo.V1.Echo.EchoClient(channel);
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await client.UnaryAsync(new EchoRequest()));
        Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
    }

    [Fact]
    public async Task UnixSocketTransport()
    {
        var path = Path.Combine(Path.GetTempPath(), $"mesh-rpc-{Guid.NewGuid():N}.sock");
        await using var server = await EchoHost.StartUnixAsync(path);
        using var channel = GrpcChannels.ForUnixSocket(path);
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
