using Mesh.WireGuard.Core;

namespace Mesh.WireGuard.Conn;

/// <summary>
/// Where an interface's datagrams come from and go to (wireguard-go's conn.Bind): the interface runs one
/// receiving thread per receiver, each pulling batches of WireGuard datagrams, and hands every datagram the
/// device sends to <see cref="Send"/>, with the calling thread's batch when it has one. A plain interface binds
/// one UDP socket (<see cref="UdpBind"/>); a mesh binds its sockets, relays and links behind one of these.
/// </summary>
public interface IBind : IDisposable
{
    /// <summary>The UDP port peers reach this interface on.</summary>
    int Port { get; }

    /// <summary>Whether sends on the port may go as one segmented (GSO) send.</summary>
    bool Segmentation { get; }

    /// <summary>Whether receives on the port come coalesced (GRO).</summary>
    bool ReceiveCoalescing { get; }

    /// <summary>How many receiving threads the interface runs (each calls <see cref="Receive"/> with its index).</summary>
    int Receivers { get; }

    /// <summary>
    /// Waits up to <paramref name="timeoutMs"/> and fills the batch with WireGuard datagrams for the device (anything
    /// else that arrived was taken care of on the way). Returns how many the batch holds, 0 on a timeout, and -1
    /// once the bind is closed for good.
    /// </summary>
    int Receive(int receiver, ReceiveBatch batch, int timeoutMs);

    /// <summary>Sends a datagram of the device; joins <paramref name="batch"/> when the thread has one (flushed with <see cref="Flush"/>).</summary>
    void Send(ReadOnlySpan<byte> datagram, NetEndpoint destination, SendBatch? batch);

    /// <summary>Sends what the batch holds (one sendmmsg) and clears it.</summary>
    void Flush(SendBatch batch);

    /// <summary>Moves the port (0 for any); false when the port is taken. Receivers carry on with the new socket.</summary>
    bool Rebind(int port);

    /// <summary>SO_MARK on what leaves, so policy routing keeps tunnel traffic out of the tunnel.</summary>
    void SetFirewallMark(int mark);
}
