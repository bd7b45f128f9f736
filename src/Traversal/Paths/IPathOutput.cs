using Mesh.Protos.V1;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Paths;

/// <summary>
/// Everything the path engine asks of the world. Production backs it with sockets, the WireGuard device
/// and the sync stream; the NAT lab with its virtual network. Calls may come from several threads.
/// </summary>
public interface IPathOutput
{
    /// <summary>
    /// Sends from socket 0 (the agent's one socket) or from a socket <see cref="OpenSocket"/> gave. A non-zero
    /// <paramref name="ttl"/> limits the hops: an opening packet that creates this side's NAT mapping but dies
    /// before it reaches the peer's NAT.
    /// </summary>
    void SendUdp(int socket, ReadOnlySpan<byte> datagram, NetEndpoint to, int ttl = 0);

    /// <summary>Sends a frame to a relay over its stream transport, for networks that block UDP.</summary>
    void SendRelayStream(string relayId, ReadOnlySpan<byte> frame);

    /// <summary>Hands a WireGuard datagram to the device.</summary>
    void DeliverWireGuard(ReadOnlySpan<byte> datagram, NetEndpoint from);

    /// <summary>Opens another UDP socket (for the hard-NAT technique) and returns its id, or -1 when none can be opened.</summary>
    int OpenSocket();

    void CloseSocket(int socket);

    /// <summary>This node's reachability changed: tell the coordinator.</summary>
    void PublishEndpoints(Endpoints endpoints);

    /// <summary>Ask the coordinator to make the peer probe this node now.</summary>
    void RequestConnect(PublicKey peer);
}
