using Mesh.WireGuard.Conn;
using Mesh.WireGuard.Core;

namespace Mesh.Traversal.Hosting;

/// <summary>A datagram that arrived on one of a bind's other sockets (called on the sockets' own receiving thread).</summary>
public delegate void DatagramReceived(int socket, ReadOnlySpan<byte> datagram, NetEndpoint from);

/// <summary>
/// The UDP sockets under a <see cref="MeshBind"/>: socket 0, the interface's port, and the sockets the hard-NAT
/// search opens. The agent backs it with the kernel's sockets (recvmmsg/sendmmsg, a hop limit per datagram as a
/// control message); the NAT lab with its virtual hosts' ports. Everything above it is the same code in both.
/// </summary>
public interface IUdpSockets : IDisposable
{
    /// <summary>Socket 0's port.</summary>
    int Port { get; }

    bool Segmentation { get; }
    bool ReceiveCoalescing { get; }

    /// <summary>Waits up to <paramref name="timeoutMs"/> for what arrived on socket 0: the count, 0 on a timeout, -1 once closed for good.</summary>
    int Receive(ReceiveBatch batch, int timeoutMs);

    /// <summary>
    /// Sends from socket 0 or one <see cref="Open"/> gave, with a hop limit for this datagram alone when
    /// <paramref name="ttl"/> is above 0. A send from socket 0 without one joins <paramref name="batch"/> when given.
    /// </summary>
    void Send(int socket, ReadOnlySpan<byte> datagram, NetEndpoint to, int ttl, SendBatch? batch);

    /// <summary>Sends what the batch holds from socket 0, and clears it.</summary>
    void Flush(SendBatch batch);

    /// <summary>Opens another socket on a free port; what arrives on it goes to <paramref name="received"/>. Returns its id, or -1.</summary>
    int Open(DatagramReceived received);

    void Close(int socket);

    /// <summary>Moves socket 0 to another port (0 for any); false when it is taken.</summary>
    bool Rebind(int port);

    void SetFirewallMark(int mark);
}
