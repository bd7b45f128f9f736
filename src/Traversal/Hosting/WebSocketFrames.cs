using System.Net.WebSockets;
using System.Threading.Channels;

namespace Mesh.Traversal.Hosting;

/// <summary>Relay frames over a WebSocket, one binary message each: the relay's server side and the agent's client side share these loops.</summary>
public static class WebSocketFrames
{
    /// <summary>The largest frame: a forwarded payload of up to 64 KiB with its header.</summary>
    public const int MaxFrame = 64 * 1024 + 64;

    /// <summary>Hands every complete message to <paramref name="onFrame"/> until the socket closes or a message is too large.</summary>
    public static async Task ReceiveAsync(WebSocket socket, Action<ReadOnlyMemory<byte>> onFrame, CancellationToken cancellationToken)
    {
        var buffer = new byte[MaxFrame];
        while (!cancellationToken.IsCancellationRequested)
        {
            var length = 0;
            ValueWebSocketReceiveResult result;
            do
            {
                result = await socket.ReceiveAsync(buffer.AsMemory(length), cancellationToken).ConfigureAwait(false);
                length += result.Count;
            } while (!result.EndOfMessage && length < buffer.Length);
            if (result.MessageType == WebSocketMessageType.Close || !result.EndOfMessage) return;
            onFrame(buffer.AsMemory(0, length));
        }
    }

    /// <summary>Sends what the channel yields until it completes, the socket fails or the token is cancelled.</summary>
    public static async Task SendAsync(WebSocket socket, ChannelReader<byte[]> frames, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var frame in frames.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                await socket.SendAsync(frame, WebSocketMessageType.Binary, true, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
        }
    }
}
