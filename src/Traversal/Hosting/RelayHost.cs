using System.Collections.Concurrent;
using System.Net;
using System.Net.WebSockets;
using System.Threading.Channels;
using Mesh.Traversal.Relay;
using Mesh.WireGuard.Conn;
using Mesh.WireGuard.Core;
using Microsoft.Extensions.Logging;

namespace Mesh.Traversal.Hosting;

/// <summary>
/// A <see cref="RelayServer"/> on real transports: one UDP socket, plus WebSocket streams for clients whose
/// network blocks UDP (each stream stands for a synthetic endpoint). The coordinator and any agent run
/// with `--relay` host it the same way. The server's state is guarded by one lock.
/// </summary>
public sealed class RelayHost : IRelayOutput, IDisposable
{
    private const int StreamQueue = 1024;
    private readonly RelayServer _server;
    private readonly UdpBinding _udp;
    private readonly IClock _clock;
    private readonly ILogger _logger;
    private readonly Thread _thread;
    private readonly ConcurrentDictionary<NetEndpoint, Channel<PooledFrame>> _streams = new();
    private long _nextStream;
    private volatile bool _stopping;

    /// <param name="address">Where to listen: a specific address makes replies leave from it, which clients match frames by; null for all.</param>
    public RelayHost(RelayServer server, IPAddress? address, int port, IClock clock, ILogger logger)
    {
        _server = server;
        _clock = clock;
        _logger = logger;
        _udp = UdpBinding.Bind(port, address);
        _thread = new Thread(ServeUdp) { IsBackground = true, Name = "relay-udp" };
        _thread.Start();
    }

    public int Port => _udp.Port;

    /// <summary>Runs one client's WebSocket until it closes: binary messages are relay frames both ways.</summary>
    public async Task ServeStreamAsync(WebSocket socket, CancellationToken cancellationToken)
    {
        var endpoint = StreamEndpoint(Interlocked.Increment(ref _nextStream));
        var outbound = WebSocketFrames.CreateQueue(StreamQueue);
        _streams[endpoint] = outbound;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var writing = WebSocketFrames.SendAsync(socket, outbound.Reader, stop.Token);
        try
        {
            await WebSocketFrames.ReceiveAsync(socket, frame =>
            {
                lock (_server) _server.Receive(frame.Span, endpoint, _clock.Now, this);
            }, stop.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
        }
        finally
        {
            _streams.TryRemove(endpoint, out _);
            outbound.Writer.TryComplete();
            lock (_server) _server.Disconnected(endpoint);
            await stop.CancelAsync().ConfigureAwait(false);
            await writing.ConfigureAwait(false);
        }
    }

    public void Send(ReadOnlySpan<byte> frame, NetEndpoint to)
    {
        if (_streams.TryGetValue(to, out var stream)) WebSocketFrames.TryEnqueue(stream.Writer, frame);
        else _udp.Send(frame, to);
    }

    public void Dispose()
    {
        _stopping = true;
        _udp.Dispose();
        _thread.Join(TimeSpan.FromSeconds(2));
    }

    private void ServeUdp()
    {
        var buffer = new byte[WebSocketFrames.MaxFrame];
        var from = _udp.CreateReceiveAddress();
        while (!_stopping)
        {
            var length = _udp.Receive(buffer, from, out var source);
            if (length < 0) return;
            if (length == 0) continue;
            try
            {
                lock (_server) _server.Receive(buffer.AsSpan(0, length), source, _clock.Now, this);
            }
            catch (Exception ex)
            {
                _logger.LogError(ex, "Relay failed on a datagram from {Source}", source);
            }
        }
    }

    /// <summary>Streams are named by addresses in fd00:: with port 0, which no UDP client can have.</summary>
    private static NetEndpoint StreamEndpoint(long id)
    {
        Span<byte> address = stackalloc byte[16];
        address[0] = 0xfd;
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(address[8..], id);
        return NetEndpoint.FromAddressBytes(address, 0);
    }
}
