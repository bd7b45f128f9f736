using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Threading.Channels;
using Mesh.Traversal.Relay;
using Mesh.WireGuard.Core;

namespace Mesh.Traversal.Hosting;

/// <summary>A frame a relay client sent, from the endpoint that stands for its stream.</summary>
public delegate void RelayStreamFrame(ReadOnlySpan<byte> frame, NetEndpoint from);

/// <summary>
/// The stream side of a relay, for clients whose network blocks UDP: each WebSocket is named by a synthetic
/// endpoint (fd00::n, port 0, which no UDP client can have), its binary messages go to <paramref name="receive"/>,
/// and frames sent to its endpoint go back down it; frames for other endpoints go to the UDP output.
/// The coordinator and `--relay` agents serve it behind Kestrel; the NAT lab serves it over its virtual TCP.
/// A stream whose client has not authenticated to the relay within <see cref="AuthTimeout"/> is closed, so sockets
/// that never say who they are cannot pile up.
/// </summary>
/// <param name="authenticated">Whether the client behind a stream's endpoint has authenticated to the relay.</param>
/// <param name="time">The clock of the authentication deadline (the NAT lab's virtual one there).</param>
/// <param name="synchronousSends">Send on the caller's thread instead of a queue reader's: the NAT lab's one thread.</param>
public sealed class RelayStreams(RelayStreamFrame receive, Action<NetEndpoint> closed, Func<NetEndpoint, bool> authenticated, IRelayOutput udp, TimeProvider time,
    bool synchronousSends = false) : IRelayOutput
{
    public static readonly TimeSpan AuthTimeout = TimeSpan.FromSeconds(10);
    private const int StreamQueue = 1024;
    private readonly ConcurrentDictionary<NetEndpoint, Channel<PooledFrame>> _streams = new();
    private long _nextStream;

    public int Count => _streams.Count;

    /// <summary>Runs one client's WebSocket until it closes or fails.</summary>
    public async Task ServeAsync(WebSocket socket, CancellationToken cancellationToken)
    {
        var endpoint = StreamEndpoint(Interlocked.Increment(ref _nextStream));
        var outbound = WebSocketFrames.CreateQueue(StreamQueue, synchronousSends);
        _streams[endpoint] = outbound;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var deadline = time.CreateTimer(_ =>
        {
            if (!authenticated(endpoint)) stop.Cancel();
        }, null, AuthTimeout, Timeout.InfiniteTimeSpan);
        var writing = WebSocketFrames.SendAsync(socket, outbound.Reader, stop.Token);
        try
        {
            await WebSocketFrames.ReceiveAsync(socket, frame => receive(frame.Span, endpoint), stop.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            // The client went away; the relay forgets it below.
        }
        finally
        {
            _streams.TryRemove(endpoint, out _);
            outbound.Writer.TryComplete();
            closed(endpoint);
            stop.Cancel();
            await writing.ConfigureAwait(false);
        }
    }

    public void Send(ReadOnlySpan<byte> frame, NetEndpoint to)
    {
        if (_streams.TryGetValue(to, out var stream)) WebSocketFrames.TryEnqueue(stream.Writer, frame);
        else udp.Send(frame, to);
    }

    private static NetEndpoint StreamEndpoint(long id)
    {
        Span<byte> address = stackalloc byte[16];
        address[0] = 0xfd;
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(address[8..], id);
        return NetEndpoint.FromAddressBytes(address, 0);
    }
}
