using Grpc.Core;

namespace Mesh.Control;

/// <summary>
/// The first exception of a kind in a failure's chain, a gRPC status's debug exception included: what a refused
/// TLS handshake looks like once HTTP and gRPC have wrapped it.
/// </summary>
public static class ExceptionChain
{
    public static T? Find<T>(Exception? exception) where T : Exception
    {
        for (var depth = 0; exception is not null && depth < 16; depth++)
        {
            if (exception is T found) return found;
            exception = exception is RpcException rpc && rpc.Status.DebugException is { } debug ? debug : exception.InnerException;
        }
        return null;
    }
}
