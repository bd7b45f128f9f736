using System.Net;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Mesh.Transport.Echo;
using Mesh.Transport.Echo.V1;

namespace Mesh.Transport.Tests;

/// <summary>The production channel (Grpc.Net.Client as Mesh.Transport sets it up) against stock gRPC's server (python3-grpcio).</summary>
public sealed class OurClientAgainstStockServerTests : EchoClientConformance, IClassFixture<StockEchoServer>, IDisposable
{
    private readonly StockEchoServer _server;
    private readonly GrpcChannel _channel;

    public OurClientAgainstStockServerTests(StockEchoServer server)
    {
        _server = server;
        // C-core servers answer frequent pings without data with GOAWAY; these calls are short anyway.
        _channel = GrpcChannels.ForAddress(new Uri(server.Address), new HttpConnector(null), Timeout.InfiniteTimeSpan);
        Client = new Echo.V1.Echo.EchoClient(_channel);
    }

    protected override Echo.V1.Echo.EchoClient Client { get; }
    protected override CallInvoker Invoker => _channel.CreateCallInvoker();
    protected override Task<bool> ServerSawCancellationAsync(string method) => _server.WaitForEventAsync("CANCELLED " + method, TimeSpan.FromSeconds(10));

    public void Dispose() => _channel.Dispose();
}

/// <summary>The production endpoint (Kestrel, Grpc.AspNetCore), run once per class against every case of the stock client.</summary>
public sealed class StockClientRun : IAsyncLifetime
{
    public EchoService Service { get; private set; } = null!;
    public Dictionary<string, JsonElement> Results { get; private set; } = new();

    public async Task InitializeAsync()
    {
        await using var server = await EchoHost.StartTcpAsync();
        Service = server.Service;
        var address = server.Address!;
        Results = await Task.Run(() => StockGrpc.RunClient($"{address.Host}:{address.Port}"));
    }

    public Task DisposeAsync() => Task.CompletedTask;
}

/// <summary>Stock gRPC's client (python3-grpcio) against the production endpoint.</summary>
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
