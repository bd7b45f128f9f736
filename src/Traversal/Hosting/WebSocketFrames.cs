using System.Buffers;
using System.Net.WebSockets;
using System.Threading.Channels;

namespace Mesh.Traversal.Hosting;

/// <summary>A relay frame waiting to be sent, in a buffer rented from the shared pool.</summary>
public readonly record struct PooledFrame(byte[] Buffer, int Length)
{
    public static PooledFrame Copy(ReadOnlySpan<byte> frame)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(frame.Length);
        frame.CopyTo(buffer);
        return new PooledFrame(buffer, frame.Length);
    }

    public ReadOnlyMemory<byte> Memory => Buffer.AsMemory(0, Length);

    public void Return() => ArrayPool<byte>.Shared.Return(Buffer);
}

/// <summary>Relay frames over a WebSocket, one binary message each: the relay's server side and the agent's client side share these loops.</summary>
public static class WebSocketFrames
{
    /// <summary>The largest frame: a forwarded payload of up to 64 KiB with its header.</summary>
    public const int MaxFrame = 64 * 1024 + 64;

    /// <summary>
    /// A bounded queue of frames to send; a full queue drops (the transport is lossy like UDP, WireGuard retransmits).
    /// With <paramref name="synchronousSends"/> the reader's sends run on the writer's thread.
    /// </summary>
    public static Channel<PooledFrame> CreateQueue(int capacity, bool synchronousSends = false) =>
        Channel.CreateBounded<PooledFrame>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            AllowSynchronousContinuations = synchronousSends,
        });

    /// <summary>Copies the frame into the queue; false (and nothing kept) when the queue is full.</summary>
    public static bool TryEnqueue(ChannelWriter<PooledFrame> queue, ReadOnlySpan<byte> frame)
    {
        var pooled = PooledFrame.Copy(frame);
        if (queue.TryWrite(pooled)) return true;
        pooled.Return();
        return false;
    }

    /// <summary>Hands every complete message to <paramref name="onFrame"/> until the socket closes or a message is too large.</summary>
    public static async Task ReceiveAsync(WebSocket socket, Action<ReadOnlyMemory<byte>> onFrame, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(MaxFrame);
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var length = 0;
                ValueWebSocketReceiveResult result;
                do
                {
                    result = await socket.ReceiveAsync(buffer.AsMemory(length, MaxFrame - length), cancellationToken).ConfigureAwait(false);
                    length += result.Count;
                } while (!result.EndOfMessage && length < MaxFrame);
                if (result.MessageType == WebSocketMessageType.Close || !result.EndOfMessage) return;
                onFrame(buffer.AsMemory(0, length));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Sends what the queue yields until it completes, the socket fails or the token is cancelled; each buffer goes back to the pool.</summary>
    public static async Task SendAsync(WebSocket socket, ChannelReader<PooledFrame> frames, CancellationToken cancellationToken)
    {
        try
        {
            while (await frames.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                while (frames.TryRead(out var frame))
                {
                    try
                    {
                        await socket.SendAsync(frame.Memory, WebSocketMessageType.Binary, true, cancellationToken).ConfigureAwait(false);
                    }
                    finally
                    {
                        frame.Return();
                    }
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
        }
    }
}
