using Google.Protobuf;
using Grpc.Core;
using Mesh.Transport.Echo.V1;

namespace Mesh.Transport.Tests;

/// <summary>What our client must do against any conforming server: run against ours and against stock gRPC.</summary>
public abstract class EchoClientConformance
{
    protected abstract Echo.V1.Echo.EchoClient Client { get; }
    protected abstract CallInvoker Invoker { get; }

    /// <summary>True once the server's handler of the method has seen its call cancelled.</summary>
    protected abstract Task<bool> ServerSawCancellationAsync(string method);

    [Fact]
    public async Task UnaryEchoesMessageAndHeaders()
    {
        var headers = new Metadata { { "x-echo", "hello header" }, { "x-echo-bin", new byte[] { 0, 1, 0xfe, 0xff } } };
        using var call = Client.UnaryAsync(new EchoRequest { Message = "hi" }, headers);
        var response = await call;
        Assert.Equal("hi", response.Message);
        Assert.Equal("hello header", response.EchoedHeader);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
        Assert.Equal(new byte[] { 0, 1, 0xfe, 0xff }, call.GetTrailers().GetValueBytes("x-echo-bin"));
    }

    [Fact]
    public async Task ServerStreamingDeliversAllMessagesInOrder()
    {
        using var call = Client.ServerStream(new EchoRequest { Message = "s", Repeat = 50 });
        var indexes = new List<int>();
        await foreach (var response in call.ResponseStream.ReadAllAsync()) indexes.Add(response.Index);
        Assert.Equal(Enumerable.Range(0, 50), indexes);
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task ClientStreamingAggregates()
    {
        using var call = Client.ClientStream();
        foreach (var word in new[] { "a", "b", "c" })
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Message = word, Payload = ByteString.CopyFromUtf8("12345") });
        }
        await call.RequestStream.CompleteAsync();
        var response = await call;
        Assert.Equal("a,b,c", response.Message);
        Assert.Equal(15, response.Index);
    }

    [Fact]
    public async Task BidirectionalPingPong()
    {
        using var call = Client.Duplex();
        for (var i = 0; i < 20; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Message = "m" + i });
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            Assert.Equal("m" + i, call.ResponseStream.Current.Message);
            Assert.Equal(i, call.ResponseStream.Current.Index);
        }
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task ErrorStatusCarriesCodeAndUnicodeMessage()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
            await Client.UnaryAsync(new EchoRequest { FailCode = (int)StatusCode.NotFound, FailMessage = "no such node: café 100% ☃" }));
        Assert.Equal(StatusCode.NotFound, ex.StatusCode);
        Assert.Equal("no such node: café 100% ☃", ex.Status.Detail);
    }

    [Fact]
    public async Task DeadlineExpires()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
            await Client.UnaryAsync(new EchoRequest { DelayMs = 5000 }, deadline: DateTime.UtcNow.AddMilliseconds(300)));
        Assert.Equal(StatusCode.DeadlineExceeded, ex.StatusCode);
    }

    [Fact]
    public async Task CancelledStreamReachesTheServer()
    {
        using var cts = new CancellationTokenSource();
        using var call = Client.ServerStream(new EchoRequest { Message = "c", Repeat = 100, DelayMs = 200 }, cancellationToken: cts.Token);
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        cts.Cancel();
        var ex = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
        Assert.True(await ServerSawCancellationAsync("ServerStream"), "the server never saw the cancellation");
    }

    [Fact]
    public async Task OversizedRequestIsRefusedByTheServer()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
            await Client.UnaryAsync(new EchoRequest { Payload = ByteString.CopyFrom(new byte[5 * 1024 * 1024]) }));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
        Assert.Equal("ok", (await Client.UnaryAsync(new EchoRequest { Message = "ok" })).Message);
    }

    [Fact]
    public async Task OversizedResponseIsRefusedByTheClient()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
            await Client.UnaryAsync(new EchoRequest { ResponsePayloadSize = 5 * 1024 * 1024 }));
        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
    }

    [Fact]
    public async Task UnknownMethodIsUnimplemented()
    {
        var method = new Method<EchoRequest, EchoResponse>(MethodType.Unary, "mesh.test.v1.Echo", "Missing",
            Marshallers.Create<EchoRequest>(r => r.ToByteArray(), EchoRequest.Parser.ParseFrom),
            Marshallers.Create<EchoResponse>(r => r.ToByteArray(), EchoResponse.Parser.ParseFrom));
        var ex = await Assert.ThrowsAsync<RpcException>(async () => await Invoker.AsyncUnaryCall(method, null, new CallOptions(), new EchoRequest()));
        Assert.Equal(StatusCode.Unimplemented, ex.StatusCode);
    }
}
