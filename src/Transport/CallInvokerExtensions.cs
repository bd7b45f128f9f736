using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Mesh.Transport;

public static class CallInvokerExtensions
{
    /// <summary>Every call through the result carries `authorization: Bearer TOKEN` (session tokens, admin API keys).</summary>
    public static CallInvoker WithBearerToken(this CallInvoker invoker, string token) =>
        invoker.Intercept(metadata =>
        {
            metadata.Add("authorization", "Bearer " + token);
            return metadata;
        });
}
