using System.Net;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Mesh.Rpc.Client;
using Mesh.Rpc.Server;
using Mesh.Rpc.Echo;
using Mesh.Rpc.Echo.V1;

namespace Mesh.Rpc.Tests;

/// <summary>Our client against stock gRPC's server (python3-grpcio).</summary>
public sealed class OurClientAgainstStockServerTests : IClassFixture<StockEchoServer>, IDisposable
{
    private readonly StockEchoServer _server;
    private readonly GrpcChannel _channel;
    private readonly Echo.V1.Echo.EchoClient _client;

    public OurClientAgainstStockServerTests(StockEchoServer server)
    {
        _server = server;
        // C-core servers answer frequent pings without data with GOAWAY; these calls are short anyway.
        _channel = GrpcChannel.ForAddress(server.Address, new GrpcChannelOptions { KeepAlivePingDelay = Timeout.InfiniteTimeSpan });
        _client = new Echo.V1.Echo.EchoClient(_channel);
    }

    public void Dispose() => _channel.Dispose();

    [Fact]
    public async Task Unary()
    {
        var headers = new Metadata { { "x-echo", "from dotnet" }, { "x-echo-bin", new byte[] { 0, 1, 0xfe, 0xff } } };
        using var call = _client.UnaryAsync(new EchoRequest { Message = "hello" }, headers);
        var response = await call;
        Assert.Equal("hello", response.Message);
        Assert.Equal("from dotnet", response.EchoedHeader);
        Assert.Equal(new byte[] { 0, 1, 0xfe, 0xff }, call.GetTrailers().GetValueBytes("x-echo-bin"));
    }

    [Fact]
    public async Task ServerStreaming()
    {
        using var call = _client.ServerStream(new EchoRequest { Message = "s", Repeat = 5 });
        var indexes = new List<int>();
        await foreach (var response in call.ResponseStream.ReadAllAsync()) indexes.Add(response.Index);
        Assert.Equal([0, 1, 2, 3, 4], indexes);
    }

    [Fact]
    public async Task ClientStreaming()
    {
        using var call = _client.ClientStream();
        foreach (var word in new[] { "a", "b", "c" }) await call.RequestStream.WriteAsync(new EchoRequest { Message = word, Payload = ByteString.CopyFromUtf8("12345") });
        await call.RequestStream.CompleteAsync();
        var response = await call;
        Assert.Equal("a,b,c", response.Message);
        Assert.Equal(15, response.Index);
    }

    [Fact]
    public async Task BidirectionalStreaming()
    {
        using var call = _client.Duplex();
        for (var i = 0; i < 5; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Message = "m" + i });
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            Assert.Equal("m" + i, call.ResponseStream.Current.Message);
        }
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task DeadlineExpires()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
            await _client.UnaryAsync(new EchoRequest { DelayMs = 5000 }, deadline: DateTime.UtcNow.AddMilliseconds(300)));
        Assert.Equal(StatusCode.DeadlineExceeded, ex.StatusCode);
    }

    [Fact]
    public async Task ErrorStatusWithMessage()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
            await _client.UnaryAsync(new EchoRequest { FailCode = (int)StatusCode.NotFound, FailMessage = "no such node: café 100% ☃" }));
        Assert.Equal(StatusCode.NotFound, ex.StatusCode);
        Assert.Equal("no such node: café 100% ☃", ex.Status.Detail);
    }

    [Fact]
    public async Task CancelledStreamReachesTheServer()
    {
        using var cts = new CancellationTokenSource();
        using var call = _client.ServerStream(new EchoRequest { Message = "c", Repeat = 100, DelayMs = 200 }, cancellationToken: cts.Token);
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        cts.Cancel();
        var ex = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
        Assert.True(await _server.WaitForEventAsync("CANCELLED ServerStream", TimeSpan.FromSeconds(10)), "the stock server never saw the cancellation");
    }

    [Fact]
    public async Task OversizedRequestIsRefusedByTheStockServer()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
            await _client.UnaryAsync(new EchoRequest { Payload = ByteString.CopyFrom(new byte[5 * 1024 * 1024]) }));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
    }

    [Fact]
    public async Task OversizedResponseIsRefusedByOurClient()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
            await _client.UnaryAsync(new EchoRequest { ResponsePayloadSize = 5 * 1024 * 1024 }));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
    }
}

/// <summary>Our server, run once per class against every case of the stock client.</summary>
public sealed class StockClientRun : IAsyncLifetime
{
    public EchoService Service { get; } = new();
    public Dictionary<string, JsonElement> Results { get; private set; } = new();

    public async Task InitializeAsync()
    {
        await using var server = new GrpcServer().AddService(Echo.V1.Echo.BindService(Service)).Listen(new IPEndPoint(IPAddress.Loopback, 0));
        await server.StartAsync();
        var address = server.Addresses[0];
        Results = await Task.Run(() => StockGrpc.RunClient($"{address.Host}:{address.Port}"));
    }

    public Task DisposeAsync() => Task.CompletedTask;
}

/// <summary>Stock gRPC's client (python3-grpcio) against our server.</summary>
public sealed class StockClientAgainstOurServerTests(StockClientRun run) : IClassFixture<StockClientRun>
{
    private JsonElement Case(string name, string expectedCode)
    {
        Assert.True(run.Results.TryGetValue(name, out var result), $"case {name} did not run");
        Assert.True(expectedCode == result.GetProperty("code").GetString(), $"{name}: expected {expectedCode}, got {result}");
        return result;
    }

    [Fact]
    public void Unary()
    {
        var data = Case("unary", "OK").GetProperty("data");
        Assert.Equal("hello", data.GetProperty("message").GetString());
        Assert.Equal("from python", data.GetProperty("echoed_header").GetString());
        Assert.Equal([0, 1, 0xfe, 0xff], data.GetProperty("bin_trailer").EnumerateArray().Select(e => e.GetInt32()));
    }

    [Fact]
    public void ServerStreaming() =>
        Assert.Equal([0, 1, 2, 3, 4], Case("server_stream", "OK").GetProperty("data").GetProperty("indexes").EnumerateArray().Select(e => e.GetInt32()));

    [Fact]
    public void ClientStreaming()
    {
        var data = Case("client_stream", "OK").GetProperty("data");
        Assert.Equal("a,b,c", data.GetProperty("message").GetString());
        Assert.Equal(15, data.GetProperty("bytes").GetInt32());
    }

    [Fact]
    public void BidirectionalStreaming() =>
        Assert.Equal(["m0", "m1", "m2", "m3", "m4"], Case("duplex", "OK").GetProperty("data").GetProperty("messages").EnumerateArray().Select(e => e.GetString()));

    [Fact]
    public void DeadlineExpires() => Case("deadline", "DEADLINE_EXCEEDED");

    [Fact]
    public void ErrorStatusWithMessage() =>
        Assert.Equal("no such node: café 100% ☃", Case("error", "NOT_FOUND").GetProperty("details").GetString());

    [Fact]
    public async Task CancelledStreamReachesOurServer()
    {
        Case("cancel", "CANCELLED");
        Assert.True(await run.Service.WaitForCancellationAsync("ServerStream", TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void OversizedRequestIsRefusedByOurServer() => Case("oversized_request", "RESOURCE_EXHAUSTED");

    [Fact]
    public void OversizedResponseIsRefusedByTheStockClient() => Case("oversized_response", "RESOURCE_EXHAUSTED");

    [Fact]
    public void UnknownMethodIsUnimplemented() => Case("unknown_method", "UNIMPLEMENTED");
}
