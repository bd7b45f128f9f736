namespace Mesh.WireGuard.Core;

/// <summary>
/// Decides which decrypted packets from a peer reach the interface (a mesh policy's filter), and learns the flows
/// this side opens so that their replies pass. Both calls run on data-path threads: no allocation, no locks.
/// </summary>
public interface IInboundFilter
{
    /// <summary>Whether the packet (a whole IP packet whose source the peer may use) may reach the interface.</summary>
    bool Admits(Peer peer, ReadOnlySpan<byte> packet);

    /// <summary>A packet this side sends into the tunnel: a flow whose replies are to pass.</summary>
    void Opened(ReadOnlySpan<byte> packet);
}
