using Grpc.Core;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Mesh.Coordinator.Hosting;

/// <summary>
/// Which listener serves what: the agents' API and the relay's WebSocket on --listen, the admin API on its own
/// listener (a unix socket in the data directory unless --admin-listen says otherwise), so an admin key is never
/// tried where agents connect; health and reflection are on both. The admin listener marks its connections.
/// </summary>
internal static class ListenerRoles
{
    private const string AdminItem = "mesh.admin-listener";

    public static void MarkAdmin(ListenOptions listen) => listen.Use(next => connection =>
    {
        connection.Items[AdminItem] = true;
        return next(connection);
    });

    public static Task GateAsync(HttpContext context, RequestDelegate next)
    {
        var path = context.Request.Path;
        var admin = context.Features.Get<IConnectionItemsFeature>()?.Items.ContainsKey(AdminItem) == true;
        if (!admin && path.StartsWithSegments("/" + Protos.V1.Admin.Descriptor.FullName))
        {
            return GrpcStatusResponse.WriteAsync(context, StatusCode.Unimplemented,
                "Admin calls are served on the coordinator's admin listener (a unix socket in its data directory, or --admin-listen), not on the agents' port.");
        }
        if (admin && (path.StartsWithSegments("/" + Protos.V1.Coordinator.Descriptor.FullName) || path.StartsWithSegments(CoordinatorHost.RelayPath)))
        {
            return GrpcStatusResponse.WriteAsync(context, StatusCode.Unimplemented, "This is the admin listener; agents connect to --listen.");
        }
        return next(context);
    }
}

/// <summary>A gRPC status written without a call behind it (trailers-only): refusals made before a service runs.</summary>
internal static class GrpcStatusResponse
{
    public static Task WriteAsync(HttpContext context, StatusCode code, string message)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/grpc";
        context.Response.Headers["grpc-status"] = ((int)code).ToString(System.Globalization.CultureInfo.InvariantCulture);
        context.Response.Headers["grpc-message"] = Uri.EscapeDataString(message);
        return Task.CompletedTask;
    }
}
