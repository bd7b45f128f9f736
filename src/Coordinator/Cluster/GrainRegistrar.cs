using Mesh.Coordinator.Api;
using Mesh.Coordinator.Control;

namespace Mesh.Coordinator.Cluster;

/// <summary>Registration through the cluster's one registry grain.</summary>
internal sealed class GrainRegistrar(IGrainFactory grains) : IRegistrar
{
    private IRegistryGrain Registry => grains.GetGrain<IRegistryGrain>(0);

    public Task<Result<Registration>> RegisterAsync(RegistrationRequest request) => Registry.Register(request);
}
