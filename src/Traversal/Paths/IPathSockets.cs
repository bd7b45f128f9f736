using Mesh.Protos.V1;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Paths;

/// <summary>
/// The sending half of the mesh's sockets and links, as the path engine uses it for its own traffic (STUN,
/// probes, opening packets, relay sessions). The bind's <see cref="Hosting.MeshLinks"/> backs it in production
/// and in the NAT lab; unit tests record it. Calls may come from several threads.
/// </summary>
public interface IPathSockets
{
    /// <summary>
    /// Sends from socket 0 (the interface's socket) or from a socket <see cref="OpenSocket"/> gave. A non-zero
    /// <paramref name="ttl"/> limits the hops: an opening packet that creates this side's NAT mapping but dies
    /// before it reaches the peer's NAT.
    /// </summary>
    void SendUdp(int socket, ReadOnlySpan<byte> datagram, NetEndpoint to, int ttl = 0);

    /// <summary>Sends a frame to a relay over its stream link (opened at the relay's TCP URL), for networks that block UDP.</summary>
    void SendRelayStream(Protos.V1.Relay relay, ReadOnlySpan<byte> frame);

    /// <summary>Opens another UDP socket (for the hard-NAT technique) and returns its id, or -1 when none can be opened.</summary>
    int OpenSocket();

    void CloseSocket(int socket);
}

/// <summary>What the path engine asks of the coordinator. Calls may come from several threads and must not block.</summary>
public interface IControlRequests
{
    /// <summary>This node's reachability changed: tell the coordinator.</summary>
    void PublishEndpoints(Endpoints endpoints);

    /// <summary>Ask the coordinator to make the peer probe this node now.</summary>
    void RequestConnect(PublicKey peer);
}
