namespace Mesh.WireGuard.Core;

/// <summary>
/// Where the protocol core puts its output. Calls happen synchronously while the core holds a peer's
/// lock, so an implementation hands the bytes on and never calls back into the device.
/// </summary>
public interface IPacketSink
{
    void SendDatagram(ReadOnlySpan<byte> datagram, NetEndpoint destination);

    void WriteTunnel(ReadOnlySpan<byte> packet);

    /// <summary>The start of a batch (the crypto pipeline's run of finished packets, on whichever thread drains it).</summary>
    void BeginBatch()
    {
    }

    /// <summary>
    /// The end of a batch (the crypto pipeline's run of finished packets): what was sent or written since may
    /// leave together now, as one sendmmsg or one coalesced TUN write. Nothing to do for a sink that does not batch.
    /// </summary>
    void EndBatch()
    {
    }
}
