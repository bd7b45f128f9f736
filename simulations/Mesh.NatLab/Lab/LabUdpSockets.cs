using Mesh.NatLab.Net;
using Mesh.Traversal.Hosting;
using Mesh.WireGuard.Conn;
using Mesh.WireGuard.Core;

namespace Mesh.NatLab.Lab;

/// <summary>
/// A virtual host's ports as a mesh bind's sockets: socket 0 on the agent's main port (what arrives waits until the
/// agent drains it, in the same event), the hard-NAT search's sockets on ports from 50001 up. Batches do not exist
/// here: every send leaves at once.
/// </summary>
public sealed class LabUdpSockets(LabHost host) : IUdpSockets
{
    public const int MainPort = 41641;
    private const int FirstOtherPort = 50000;

    private readonly Queue<Datagram> _arrived = new();
    private readonly Dictionary<int, int> _ports = new();
    private int _nextSocket = 1;

    public int Port => MainPort;
    public bool Segmentation => false;
    public bool ReceiveCoalescing => false;

    /// <summary>Datagrams waiting for <see cref="Receive"/>.</summary>
    public int Pending => _arrived.Count;

    /// <summary>A datagram reached the main port.</summary>
    public void Arrive(Datagram datagram) => _arrived.Enqueue(datagram);

    public int Receive(ReceiveBatch batch, int timeoutMs)
    {
        batch.Clear();
        while (_arrived.TryPeek(out var next) && batch.Append(next.Payload, next.Source, 0, null)) _arrived.Dequeue();
        return batch.Count;
    }

    public void Send(int socket, ReadOnlySpan<byte> datagram, NetEndpoint to, int ttl, SendBatch? batch)
    {
        var port = socket == 0 ? MainPort : _ports.GetValueOrDefault(socket);
        if (port != 0) host.Send(port, to, datagram, ttl);
    }

    public void Flush(SendBatch batch) => batch.Clear();

    public int Open(DatagramReceived received)
    {
        var id = _nextSocket++;
        var port = FirstOtherPort + id;
        if (!host.Bind(port, d => received(id, d.Payload, d.Source))) return -1;
        _ports[id] = port;
        return id;
    }

    public void Close(int socket)
    {
        if (_ports.Remove(socket, out var port)) host.Unbind(port);
    }

    public bool Rebind(int port) => port is 0 or MainPort;

    public void SetFirewallMark(int mark)
    {
    }

    public void Dispose()
    {
        foreach (var port in _ports.Values) host.Unbind(port);
        _ports.Clear();
    }
}
