using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Mesh.Protos.V1;
using Mesh.Transport;
using Mesh.Traversal.Hosting;
using Mesh.Traversal.Paths;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Host;
using Mesh.WireGuard.Keys;
using Microsoft.Extensions.Logging;

namespace Mesh.Agent.Daemon;

/// <summary>
/// The path engine's edges in production: the interface's one UDP socket (WireGuard stays on its fast
/// path; everything else comes here), extra sockets for the hard-NAT search, TCP streams to relays
/// for networks that block UDP, and the coordinator for endpoints and connect requests.
/// </summary>
public sealed class MeshIo : IPathOutput, IDatagramRouter, IDisposable
{
    private const int DefaultTtl = 64;
    private readonly ConcurrentDictionary<int, Socket> _sockets = new();
    private readonly RelayWebSocketConnector _webSockets;
    private readonly RelayStreamSet _streams;
    private readonly CancellationTokenSource _stopping = new();
    private readonly InterfaceHost _host;
    private int _nextSocket;

    public MeshIo(InterfaceHost host, Func<string, Uri?> relayStreamUrl, HttpConnector connector, ILogger logger)
    {
        _host = host;
        _webSockets = new RelayWebSocketConnector(connector);
        _streams = new RelayStreamSet(relayStreamUrl, _webSockets.ConnectAsync, (id, frame) => Engine.OnRelayStreamFrame(id, frame.Span), logger);
    }

    /// <summary>Set once, right after construction: the engine needs this object as its output.</summary>
    public PathEngine Engine { get; set; } = null!;

    public Action<Endpoints>? EndpointsChanged { get; set; }
    public Action<PublicKey>? ConnectRequested { get; set; }

    public void OnDatagram(ReadOnlySpan<byte> datagram, NetEndpoint from) => Engine.OnDatagram(0, datagram, from);

    public bool TrySend(ReadOnlySpan<byte> datagram, NetEndpoint destination) => Engine.TrySend(datagram, destination);

    public void SendUdp(int socket, ReadOnlySpan<byte> datagram, NetEndpoint to, int ttl = 0)
    {
        if (socket == 0)
        {
            _host.SendRaw(datagram, to, ttl);
            return;
        }
        if (!_sockets.TryGetValue(socket, out var extra)) return;
        try
        {
            extra.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.IpTimeToLive, ttl > 0 ? ttl : DefaultTtl);
            extra.SendTo(datagram, SocketFlags.None, to.ToIPEndPoint());
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }

    public void SendRelayStream(string relayId, ReadOnlySpan<byte> frame) => _streams.Send(relayId, frame);

    /// <summary>The relay streams opened so far, for `mesh-agent status`.</summary>
    public ICollection<RelayStreamLink> RelayStreams => _streams.Links;

    /// <summary>The host's addresses changed: relay streams dial again rather than wait for keepalives to find them dead.</summary>
    public void NetworkChanged() => _streams.Reconnect();

    public void DeliverWireGuard(ReadOnlySpan<byte> datagram, NetEndpoint from) => _host.ReceiveWireGuard(datagram, from);

    public int OpenSocket()
    {
        var socket = new Socket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp) { DualMode = true };
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.IPv6Any, 0));
        }
        catch (SocketException)
        {
            socket.Dispose();
            return -1;
        }
        var id = Interlocked.Increment(ref _nextSocket);
        _sockets[id] = socket;
        _ = ReceiveAsync(id, socket);
        return id;
    }

    public void CloseSocket(int socket)
    {
        if (_sockets.TryRemove(socket, out var closed)) closed.Dispose();
    }

    public void PublishEndpoints(Endpoints endpoints) => EndpointsChanged?.Invoke(endpoints);

    public void RequestConnect(PublicKey peer) => ConnectRequested?.Invoke(peer);

    public void Dispose()
    {
        _stopping.Cancel();
        foreach (var socket in _sockets.Values) socket.Dispose();
        _sockets.Clear();
        _streams.Dispose();
        _webSockets.Dispose();
    }

    private async Task ReceiveAsync(int id, Socket socket)
    {
        var buffer = new byte[64 * 1024];
        var any = new IPEndPoint(IPAddress.IPv6Any, 0);
        while (!_stopping.IsCancellationRequested)
        {
            SocketReceiveFromResult result;
            try
            {
                result = await socket.ReceiveFromAsync(buffer, SocketFlags.None, any, _stopping.Token).ConfigureAwait(false);
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
            {
                continue;
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return;
            }
            Engine.OnDatagram(id, buffer.AsSpan(0, result.ReceivedBytes), new NetEndpoint((IPEndPoint)result.RemoteEndPoint));
        }
    }
}
