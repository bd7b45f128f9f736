using System.Net;
using System.Net.WebSockets;
using Mesh.Traversal.Relay;
using Mesh.WireGuard.Conn;
using Mesh.WireGuard.Core;
using Microsoft.Extensions.Logging;

namespace Mesh.Traversal.Hosting;

/// <summary>
/// A <see cref="RelayServer"/> on real transports: one UDP socket, plus WebSocket streams (<see cref="RelayStreams"/>)
/// for clients whose network blocks UDP. The coordinator and any agent run with `--relay` host it the same way.
/// The server's state is guarded by one lock.
/// </summary>
public sealed class RelayHost : IRelayOutput, IDisposable
{
    private readonly RelayServer _server;
    private readonly UdpBinding _udp;
    private readonly RelayStreams _streams;
    private readonly IClock _clock;
    private readonly ILogger _logger;
    private readonly Thread _thread;
    private volatile bool _stopping;

    /// <param name="address">Where to listen: a specific address makes replies leave from it, which clients match frames by; null for all.</param>
    public RelayHost(RelayServer server, IPAddress? address, int port, IClock clock, ILogger logger)
    {
        _server = server;
        _clock = clock;
        _logger = logger;
        _udp = UdpBinding.Bind(port, address);
        _streams = new RelayStreams(
            (frame, from) =>
            {
                lock (_server) _server.Receive(frame, from, _clock.Now, _streams!);
            },
            endpoint =>
            {
                lock (_server) _server.Disconnected(endpoint);
            },
            endpoint =>
            {
                lock (_server) return _server.IsAuthenticated(endpoint);
            },
            this, TimeProvider.System);
        _thread = new Thread(ServeUdp) { IsBackground = true, Name = "relay-udp" };
        _thread.Start();
    }

    public int Port => _udp.Port;

    /// <summary>Runs one client's WebSocket until it closes: binary messages are relay frames both ways.</summary>
    public Task ServeStreamAsync(WebSocket socket, CancellationToken cancellationToken) => _streams.ServeAsync(socket, cancellationToken);

    /// <summary>Frames for UDP clients; stream clients' frames go down their streams.</summary>
    public void Send(ReadOnlySpan<byte> frame, NetEndpoint to) => _udp.Send(frame, to);

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
                lock (_server) _server.Receive(buffer.AsSpan(0, length), source, _clock.Now, _streams);
            }
            catch (Exception ex)
            {
                _logger.LogError(ex, "Relay failed on a datagram from {Source}", source);
            }
        }
    }
}
