using Grpc.Core;
using Mesh.Coordinator.Control;

namespace Mesh.Coordinator.Api;

/// <summary>Domain refusals as gRPC statuses, at the edge where the API meets the mesh.</summary>
internal static class Problems
{
    public static StatusCode Code(Failure kind) => kind switch
    {
        Failure.InvalidArgument => StatusCode.InvalidArgument,
        Failure.NotFound => StatusCode.NotFound,
        Failure.AlreadyExists => StatusCode.AlreadyExists,
        Failure.FailedPrecondition => StatusCode.FailedPrecondition,
        Failure.PermissionDenied => StatusCode.PermissionDenied,
        Failure.Unauthenticated => StatusCode.Unauthenticated,
        Failure.Unavailable => StatusCode.Unavailable,
        Failure.ResourceExhausted => StatusCode.ResourceExhausted,
        _ => StatusCode.Aborted,
    };

    public static RpcException ToRpc(this Problem problem) => new(new Status(Code(problem.Kind), problem.Message));

    /// <summary>The value, or the problem as the RpcException gRPC answers with.</summary>
    public static T OrThrow<T>(this Result<T> result) => result.Ok ? result.Value! : throw result.Problem!.ToRpc();
}
