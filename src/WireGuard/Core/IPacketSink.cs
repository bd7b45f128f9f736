namespace Mesh.WireGuard.Core;

/// <summary>
/// Where the protocol core puts its output. Calls happen synchronously while the core holds a peer's
/// lock, so an implementation hands the bytes on and never calls back into the device.
/// </summary>
public interface IPacketSink
{
    void SendDatagram(ReadOnlySpan<byte> datagram, NetEndpoint destination);

    void WriteTunnel(ReadOnlySpan<byte> packet);
}
