namespace Mesh.Coordinator.Control;

/// <summary>What kind of refusal a domain operation ended in; the gRPC layer maps each to its status code.</summary>
public enum Failure
{
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    PermissionDenied,
    Unauthenticated,
    /// <summary>The store cannot be reached; nothing was changed.</summary>
    Unavailable,
    /// <summary>Nothing was changed; trying again may work.</summary>
    Aborted,
    /// <summary>A bound was reached (addresses, waiting nodes, requests at once); nothing was changed.</summary>
    ResourceExhausted,
    /// <summary>The replica's hub is not attached to the publisher (the publisher moved or restarted): attach, then try again.</summary>
    Detached,
}

/// <summary>Why an operation did not happen, in words for the caller.</summary>
[GenerateSerializer, Immutable]
public sealed record Problem([property: Id(0)] Failure Kind, [property: Id(1)] string Message)
{
    public static Problem InvalidArgument(string message) => new(Failure.InvalidArgument, message);
    public static Problem NotFound(string message) => new(Failure.NotFound, message);
    public static Problem Unauthenticated(string message) => new(Failure.Unauthenticated, message);
    public static Problem PermissionDenied(string message) => new(Failure.PermissionDenied, message);
    public static Problem ResourceExhausted(string message) => new(Failure.ResourceExhausted, message);
    public static Problem StoreDown(Exception error) => new(Failure.Unavailable, $"The database is unreachable, so nothing was changed: {error.Message}");
}

/// <summary>A value, or the problem that kept it from being made; expected refusals are values, not exceptions.</summary>
[GenerateSerializer, Immutable]
public readonly record struct Result<T>([property: Id(0)] T? Value, [property: Id(1)] Problem? Problem)
{
    public bool Ok => Problem is null;

    public static implicit operator Result<T>(T value) => new(value, null);

    public static implicit operator Result<T>(Problem problem) => new(default, problem);
}
