using System.Threading.Channels;
using Grpc.Core;
using Mesh.Protos.V1;

namespace Mesh.Coordinator.Control;

/// <summary>
/// One agent's open sync stream as the mesh state sees it: a bounded queue of what to send, and a way for
/// the coordinator to end it (expired, deleted, replaced by a newer stream, or too slow to keep up).
/// </summary>
public sealed class SyncSession
{
    /// <summary>An agent further behind than this many messages is disconnected; it resumes or gets a full map.</summary>
    public const int QueueLimit = 8192;

    private readonly Channel<SyncResponse> _outbound = Channel.CreateBounded<SyncResponse>(new BoundedChannelOptions(QueueLimit)
    {
        SingleReader = true,
        FullMode = BoundedChannelFullMode.Wait,
    });
    private readonly CancellationTokenSource _closed = new();

    internal SyncSession(long nodeId, IReadOnlyList<string> stunServers)
    {
        NodeId = nodeId;
        StunServers = stunServers;
    }

    public long NodeId { get; }
    public IReadOnlyList<string> StunServers { get; }
    public ChannelReader<SyncResponse> Outbound => _outbound.Reader;

    /// <summary>Cancelled when the coordinator ends the stream; <see cref="CloseStatus"/> says why.</summary>
    public CancellationToken Closed => _closed.Token;
    public Status? CloseStatus { get; private set; }

    internal void Enqueue(SyncResponse message)
    {
        if (!_outbound.Writer.TryWrite(message)) Close(new Status(StatusCode.ResourceExhausted, "The agent fell too far behind; reconnect to resume."));
    }

    internal void Close(Status status)
    {
        if (CloseStatus is not null) return;
        CloseStatus = status;
        _outbound.Writer.TryComplete();
        _closed.Cancel();
    }
}
