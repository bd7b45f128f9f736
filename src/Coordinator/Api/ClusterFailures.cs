using Grpc.Core;
using Grpc.Core.Interceptors;
using Orleans.Runtime;

namespace Mesh.Coordinator.Api;

/// <summary>
/// A grain call that failed because the cluster is changing (the replica holding the grain died, a call timed
/// out while it moved) is UNAVAILABLE with a one-line reason, so clients retry or move to another replica;
/// without this, gRPC answers UNKNOWN, "Exception was thrown by handler".
/// </summary>
internal sealed class ClusterFailures : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (Exception ex) when (IsClusterFailure(ex))
        {
            throw Unavailable(ex);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(requestStream, responseStream, context);
        }
        catch (Exception ex) when (IsClusterFailure(ex))
        {
            throw Unavailable(ex);
        }
    }

    private static bool IsClusterFailure(Exception ex) => ex is SiloUnavailableException or OrleansMessageRejectionException or TimeoutException;

    private static RpcException Unavailable(Exception ex) =>
        new(new Status(StatusCode.Unavailable, $"The coordinator cluster is changing (a replica went away); try again: {ex.Message.ReplaceLineEndings(" ")}"));
}
