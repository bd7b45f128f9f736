namespace Mesh.Traversal.Hosting;

/// <summary>What the control client registers with, and the clock and randomness its reconnects run on.</summary>
public sealed record ControlClientOptions
{
    public required string AuthKey { get; init; }
    public required string Hostname { get; init; }

    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Jitter of the reconnect backoff (the NAT lab seeds it).</summary>
    public Random Jitter { get; init; } = Random.Shared;
}
