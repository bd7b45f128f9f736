using Google.Protobuf;
using Grpc.Core;
using Mesh.Transport.Echo.V1;

namespace Mesh.Transport.Echo;

/// <summary>The C# side of the test service; interop/echo_server.py behaves the same way.</summary>
public sealed class EchoService : V1.Echo.EchoBase
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _cancelled = new();

    /// <summary>True once a handler of the method has seen its call cancelled.</summary>
    public async Task<bool> WaitForCancellationAsync(string method, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (!_cancelled.Contains(method))
        {
            if (DateTime.UtcNow > until) return false;
            await Task.Delay(10);
        }
        return true;
    }

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
            _cancelled.Enqueue("Duplex");
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
                _cancelled.Enqueue(method);
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
