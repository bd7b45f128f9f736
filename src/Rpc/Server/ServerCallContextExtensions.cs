using Grpc.Core;
using Microsoft.AspNetCore.Http;

namespace Mesh.Rpc.Server;

public static class ServerCallContextExtensions
{
    /// <summary>The HTTP request behind a call served by <see cref="GrpcServiceDispatcher"/> (as in Grpc.AspNetCore).</summary>
    public static HttpContext GetHttpContext(this ServerCallContext context) =>
        (context as HttpServerCallContext)?.HttpContext ?? throw new InvalidOperationException("This call was not served over HTTP.");
}
