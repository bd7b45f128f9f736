using Grpc.Core;

namespace Mesh.Coordinator.Api;

internal static class Auth
{
    /// <summary>The token of an `authorization: Bearer TOKEN` header, or null.</summary>
    public static string? BearerToken(ServerCallContext context)
    {
        var value = context.RequestHeaders.GetValue("authorization");
        const string prefix = "Bearer ";
        return value is not null && value.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) ? value[prefix.Length..].Trim() : null;
    }
}
