using Grpc.Core;
using Grpc.Health.V1;

namespace Mesh.Coordinator.Health;

/// <summary>grpc.health.v1.Health as grpc/doc/health-checking.md specifies it.</summary>
public sealed class HealthService(HealthStatusRegistry registry) : Grpc.Health.V1.Health.HealthBase
{
    public override Task<HealthCheckResponse> Check(HealthCheckRequest request, ServerCallContext context)
    {
        var status = registry.GetStatus(request.Service)
            ?? throw new RpcException(new Status(StatusCode.NotFound, $"Unknown service \"{request.Service}\"."));
        return Task.FromResult(new HealthCheckResponse { Status = status });
    }

    public override async Task Watch(HealthCheckRequest request, IServerStreamWriter<HealthCheckResponse> responseStream, ServerCallContext context)
    {
        using var subscription = registry.Subscribe();
        var last = Current(request.Service);
        await responseStream.WriteAsync(new HealthCheckResponse { Status = last });
        try
        {
            while (await subscription.Changes.WaitToReadAsync(context.CancellationToken))
            {
                while (subscription.Changes.TryRead(out _)) { }
                var now = Current(request.Service);
                if (now == last) continue;
                last = now;
                await responseStream.WriteAsync(new HealthCheckResponse { Status = now });
            }
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            // The watcher went away or the server is stopping.
        }
    }

    private HealthCheckResponse.Types.ServingStatus Current(string service) =>
        registry.GetStatus(service) ?? HealthCheckResponse.Types.ServingStatus.ServiceUnknown;
}
