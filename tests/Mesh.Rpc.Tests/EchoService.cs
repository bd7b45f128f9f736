using Google.Protobuf;
using Grpc.Core;
using Mesh.Rpc.Tests.Echo;

namespace Mesh.Rpc.Tests;

/// <summary>The C# side of the test service; interop/echo_server.py behaves the same way.</summary>
public sealed class EchoService : Echo.Echo.EchoBase
{
    /// <summary>Completes when a handler sees its call cancelled, with the method's name.</summary>
    public TaskCompletionSource<string> Cancelled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public override async Task<EchoResponse> Unary(EchoRequest request, ServerCallContext context)
    {
        await BeforeResponse(request, context, "Unary");
        var binary = context.RequestHeaders.GetValueBytes("x-echo-bin");
        if (binary is not null) context.ResponseTrailers.Add("x-echo-bin", binary);
        return Respond(request, context, 0);
    }

    public override async Task ServerStream(EchoRequest request, IServerStreamWriter<EchoResponse> responseStream, ServerCallContext context)
    {
        for (var i = 0; i < request.Repeat; i++)
        {
            await BeforeResponse(request, context, "ServerStream", failAllowed: false);
            await responseStream.WriteAsync(Respond(request, context, i));
        }
        Fail(request);
    }

    public override async Task<EchoResponse> ClientStream(IAsyncStreamReader<EchoRequest> requestStream, ServerCallContext context)
    {
        var messages = new List<string>();
        var bytes = 0;
        await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
        {
            messages.Add(request.Message);
            bytes += request.Payload.Length;
        }
        return new EchoResponse { Message = string.Join(",", messages), Index = bytes };
    }

    public override async Task Duplex(IAsyncStreamReader<EchoRequest> requestStream, IServerStreamWriter<EchoResponse> responseStream, ServerCallContext context)
    {
        var index = 0;
        try
        {
            await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
            {
                await BeforeResponse(request, context, "Duplex");
                await responseStream.WriteAsync(Respond(request, context, index++));
            }
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.Cancelled)
        {
            Cancelled.TrySetResult("Duplex");
            throw;
        }
    }

    private async Task BeforeResponse(EchoRequest request, ServerCallContext context, string method, bool failAllowed = true)
    {
        if (request.DelayMs > 0)
        {
            try
            {
                await Task.Delay(request.DelayMs, context.CancellationToken);
            }
            catch (OperationCanceledException)
            {
                Cancelled.TrySetResult(method);
                throw;
            }
        }
        if (failAllowed) Fail(request);
    }

    private static void Fail(EchoRequest request)
    {
        if (request.FailCode != 0) throw new RpcException(new Status((StatusCode)request.FailCode, request.FailMessage));
    }

    private static EchoResponse Respond(EchoRequest request, ServerCallContext context, int index) => new()
    {
        Message = request.Message,
        Payload = request.ResponsePayloadSize > 0 ? ByteString.CopyFrom(new byte[request.ResponsePayloadSize]) : request.Payload,
        Index = index,
        EchoedHeader = context.RequestHeaders.GetValue("x-echo") ?? "",
    };
}
