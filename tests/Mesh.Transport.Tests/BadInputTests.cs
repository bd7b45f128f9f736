using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Mesh.Transport.Echo;
using Mesh.Transport.Echo.V1;

namespace Mesh.Transport.Tests;

/// <summary>Malformed requests get the status the protocol asks for, and the server keeps serving other streams.</summary>
public sealed class BadInputTests(EchoServerFixture fixture) : IClassFixture<EchoServerFixture>
{
    private const string UnaryPath = "/mesh.test.v1.Echo/Unary";

    private static byte[] ValidRequest => new EchoRequest { Message = "x" }.ToByteArray();

    public static TheoryData<string, byte[], string, string, StatusCode> GrpcLevelErrors => new()
    {
        // Grpc.AspNetCore answers a compressed flag other than 0 or 1 with UNKNOWN ("Unexpected compressed flag value").
        { "invalid compressed flag", RawCalls.Frame(ValidRequest, flag: 7), UnaryPath, "application/grpc", StatusCode.Unknown },
        { "truncated message", RawCalls.Frame(new byte[10], declaredLength: 100), UnaryPath, "application/grpc", StatusCode.Internal },
        { "truncated header", new byte[] { 0, 0, 0 }, UnaryPath, "application/grpc", StatusCode.Internal },
        { "empty body", Array.Empty<byte>(), UnaryPath, "application/grpc", StatusCode.Internal },
        { "garbage protobuf", RawCalls.Frame(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }), UnaryPath, "application/grpc", StatusCode.InvalidArgument },
        { "compressed without encoding", RawCalls.Frame(ValidRequest, flag: 1), UnaryPath, "application/grpc", StatusCode.Internal },
        { "two messages to a unary method", [.. RawCalls.Frame(ValidRequest), .. RawCalls.Frame(ValidRequest)], UnaryPath, "application/grpc", StatusCode.Internal },
        { "declared length over the limit", RawCalls.Frame(new byte[8], declaredLength: 100 * 1024 * 1024), UnaryPath, "application/grpc", StatusCode.ResourceExhausted },
        { "unknown method", RawCalls.Frame(ValidRequest), "/mesh.test.v1.Echo/Nope", "application/grpc", StatusCode.Unimplemented },
        { "unknown service", RawCalls.Frame(ValidRequest), "/no.Such/Method", "application/grpc+proto", StatusCode.Unimplemented },
    };

    [Theory]
    [MemberData(nameof(GrpcLevelErrors))]
    public async Task MalformedCallsGetTheRightStatusAndOtherStreamsGoOn(string what, byte[] body, string path, string contentType, StatusCode expected)
    {
        // A long-lived stream that must survive the bad call next to it on the same connection.
        using var bystander = fixture.Client.Duplex();
        await bystander.RequestStream.WriteAsync(new EchoRequest { Message = "before" });
        Assert.True(await bystander.ResponseStream.MoveNext(CancellationToken.None));

        using var http = RawCalls.CreateClient();
        using var response = await http.SendAsync(RawCalls.Request(fixture.Address, path, body, contentType));
        await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(((int)expected).ToString() == RawCalls.GrpcStatus(response), $"{what}: expected {expected}, got {RawCalls.GrpcStatus(response)} ({RawCalls.GrpcMessage(response)})");

        await bystander.RequestStream.WriteAsync(new EchoRequest { Message = "after" });
        Assert.True(await bystander.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal("after", bystander.ResponseStream.Current.Message);
        await bystander.RequestStream.CompleteAsync();
    }

    [Fact]
    public async Task WrongContentTypeIs415()
    {
        using var http = RawCalls.CreateClient();
        using var response = await http.SendAsync(RawCalls.Request(fixture.Address, UnaryPath, RawCalls.Frame(ValidRequest), "application/json"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Equal(((int)StatusCode.Internal).ToString(), RawCalls.GrpcStatus(response));
    }

    [Fact]
    public async Task UnsupportedEncodingIsUnimplemented()
    {
        using var http = RawCalls.CreateClient();
        var request = RawCalls.Request(fixture.Address, UnaryPath, RawCalls.Frame(ValidRequest, flag: 1));
        request.Headers.TryAddWithoutValidation("grpc-encoding", "snappy");
        using var response = await http.SendAsync(request);
        Assert.Equal(((int)StatusCode.Unimplemented).ToString(), RawCalls.GrpcStatus(response));
        Assert.Contains("gzip", response.Headers.GetValues("grpc-accept-encoding").Single());
    }

    [Fact]
    public async Task MalformedTimeoutIsIgnored()
    {
        // Grpc.AspNetCore logs a grpc-timeout it cannot parse and serves the call without a deadline.
        using var http = RawCalls.CreateClient();
        var request = RawCalls.Request(fixture.Address, UnaryPath, RawCalls.Frame(ValidRequest));
        request.Headers.TryAddWithoutValidation("grpc-timeout", "soon");
        using var response = await http.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(((int)StatusCode.OK).ToString(), RawCalls.GrpcStatus(response));
    }

    [Fact]
    public async Task GetIsNotServed()
    {
        using var http = RawCalls.CreateClient();
        using var response = await http.GetAsync(new Uri(fixture.Address, UnaryPath));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task TrailersOnlyResponseCarriesStatusInHeaders()
    {
        using var http = RawCalls.CreateClient();
        using var response = await http.SendAsync(RawCalls.Request(fixture.Address, UnaryPath,
            RawCalls.Frame(new EchoRequest { FailCode = (int)StatusCode.PermissionDenied, FailMessage = "no" }.ToByteArray())));
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.Empty(body);
        Assert.Equal(((int)StatusCode.PermissionDenied).ToString(), response.Headers.GetValues("grpc-status").Single());
        Assert.Empty(response.TrailingHeaders);
    }

    [Fact]
    public async Task ResetStreamMidCallLeavesServerServing()
    {
        using var cts = new CancellationTokenSource();
        using var call = fixture.Client.ClientStream(cancellationToken: cts.Token);
        await call.RequestStream.WriteAsync(new EchoRequest { Message = "partial" });
        cts.Cancel();
        await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal("still", (await fixture.Client.UnaryAsync(new EchoRequest { Message = "still" })).Message);
    }
}
