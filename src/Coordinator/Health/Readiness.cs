using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Mesh.Coordinator.Health;

/// <summary>
/// The coordinator's health for grpc.health.v1: healthy from the moment it serves everything (store open,
/// STUN and relay listening) until it starts to stop.
/// </summary>
public sealed class Readiness : IHealthCheck
{
    private volatile bool _ready;

    public void Ready() => _ready = true;

    public void Stopping() => _ready = false;

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(_ready ? HealthCheckResult.Healthy("serving") : HealthCheckResult.Unhealthy("starting or stopping"));
}
