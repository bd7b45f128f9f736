using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Threading.Channels;
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
/// path; everything else comes here), extra sockets for the hard-NAT search, WebSocket streams to relays
/// for networks that block UDP, and the coordinator for endpoints and connect requests.
/// </summary>
public sealed class MeshIo(InterfaceHost host, Func<string, Uri?> relayStreamUrl, HttpConnector connector, ILogger logger) : IPathOutput, IDatagramRouter, IDisposable
{
    private const int DefaultTtl = 64;
    private readonly ConcurrentDictionary<int, Socket> _sockets = new();
    private readonly ConcurrentDictionary<string, RelayStream> _streams = new();
    private readonly CancellationTokenSource _stopping = new();
    private int _nextSocket;

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
            host.SendRaw(datagram, to, ttl);
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

    public void SendRelayStream(string relayId, ReadOnlySpan<byte> frame)
    {
        if (relayStreamUrl(relayId) is not { } url) return;
        var stream = _streams.GetOrAdd(relayId, id => new RelayStream(id, url, this, connector, logger, _stopping.Token));
        stream.Send(frame.ToArray());
    }

    public void DeliverWireGuard(ReadOnlySpan<byte> datagram, NetEndpoint from) => host.Device.ReceiveDatagram(datagram, from);

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

    /// <summary>One relay's TCP transport: a WebSocket, opened on first use and again after it breaks.</summary>
    private sealed class RelayStream
    {
        private readonly string _id;
        private readonly Uri _url;
        private readonly MeshIo _io;
        private readonly ILogger _logger;
        private readonly Channel<byte[]> _outbound = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropWrite });

        private readonly HttpConnector _connector;

        public RelayStream(string id, Uri url, MeshIo io, HttpConnector connector, ILogger logger, CancellationToken stopping)
        {
            _connector = connector;
            _id = id;
            _url = url;
            _io = io;
            _logger = logger;
            _ = RunAsync(stopping);
        }

        public void Send(byte[] frame) => _outbound.Writer.TryWrite(frame);

        private async Task RunAsync(CancellationToken stopping)
        {
            var delay = TimeSpan.FromSeconds(1);
            while (!stopping.IsCancellationRequested)
            {
                try
                {
                    // The coordinator serves gRPC as HTTP/2 without TLS (h2c), so the WebSocket runs over HTTP/2 too (RFC 8441).
                    using var socket = new ClientWebSocket();
                    socket.Options.HttpVersion = HttpVersion.Version20;
                    socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
                    using var invoker = new HttpMessageInvoker(_connector.CreateHandler(Timeout.InfiniteTimeSpan));
                    await socket.ConnectAsync(_url, invoker, stopping).ConfigureAwait(false);
                    _logger.LogInformation("Relay {Relay} reached over TCP at {Url}", _id, _url);
                    delay = TimeSpan.FromSeconds(1);
                    using var session = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                    var writing = WebSocketFrames.SendAsync(socket, _outbound.Reader, session.Token);
                    await WebSocketFrames.ReceiveAsync(socket, frame => _io.Engine.OnRelayStreamFrame(_id, frame.Span), session.Token).ConfigureAwait(false);
                    await session.CancelAsync().ConfigureAwait(false);
                    await writing.ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is WebSocketException or HttpRequestException or IOException)
                {
                    _logger.LogDebug("Relay {Relay} over TCP: {Message}", _id, ex.Message);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                await Task.Delay(delay, stopping).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(30).Ticks, delay.Ticks * 2));
            }
        }
    }
}
