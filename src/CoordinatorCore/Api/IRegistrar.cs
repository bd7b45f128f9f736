using Mesh.Coordinator.Control;

namespace Mesh.Coordinator.Api;

/// <summary>What the Coordinator service needs of the node registry: its grain in a silo, the registry itself in the NAT lab.</summary>
public interface IRegistrar
{
    Task<Result<Registration>> RegisterAsync(RegistrationRequest request);
}
