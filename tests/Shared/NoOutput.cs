using Mesh.Protos.V1;
using Mesh.Traversal.Paths;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;

namespace Mesh.Tests.Shared;

/// <summary>Where a device's and a path engine's packets go when only their state matters (tests, the agent benchmark): nowhere.</summary>
public sealed class NoOutput : IPacketSink, IPathSockets, IControlRequests
{
    public void SendDatagram(ReadOnlySpan<byte> datagram, NetEndpoint destination) { }
    public void WriteTunnel(ReadOnlySpan<byte> packet) { }
    public void SendUdp(int socket, ReadOnlySpan<byte> datagram, NetEndpoint to, int ttl = 0) { }
    public void SendRelayStream(Relay relay, ReadOnlySpan<byte> frame) { }
    public int OpenSocket() => -1;
    public void CloseSocket(int socket) { }
    public void PublishEndpoints(Endpoints endpoints) { }
    public void RequestConnect(PublicKey peer) { }
}
