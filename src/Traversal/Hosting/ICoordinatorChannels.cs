using Grpc.Core;
using Mesh.Control;

namespace Mesh.Traversal.Hosting;

/// <summary>
/// How the control client reaches a coordinator replica: gRPC over HTTP/2 in the agent, calls over the virtual
/// network in the NAT lab. Connections are kept per replica until <see cref="Reset"/>.
/// </summary>
public interface ICoordinatorChannels : IDisposable
{
    CallInvoker For(CoordinatorTarget target);

    /// <summary>Drops every connection (the host's addresses changed): the next call dials afresh.</summary>
    void Reset();
}
