using System.Threading.Channels;
using Mesh.Coordinator.Control;
using Mesh.Coordinator.Store;
using Mesh.Protos.V1;

namespace Mesh.Coordinator.Sync;

/// <summary>
/// One agent's open sync stream as its replica's hub holds it: a bounded queue of what to send, and a way for the
/// coordinator to end it (expired, deleted, replaced by a newer stream, or too slow to keep up).
/// </summary>
public sealed class SyncSession
{
    /// <summary>An agent further behind than this many messages is disconnected; it resumes or gets a full map.</summary>
    public const int QueueLimit = 8192;

    private readonly Channel<SyncResponse> _outbound;
    private readonly CancellationTokenSource _closed = new();
    private readonly object _lock = new();

    internal SyncSession(NodeRecord node, IReadOnlyList<string> stunServers, MapForm form, bool synchronousSends)
    {
        _outbound = Channel.CreateBounded<SyncResponse>(new BoundedChannelOptions(QueueLimit)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
            AllowSynchronousContinuations = synchronousSends,
        });
        Node = node;
        StunServers = stunServers;
        Form = form;
    }

    public NodeRecord Node { get; }
    public long NodeId => Node.Id;
    public IReadOnlyList<string> StunServers { get; }

    /// <summary>The form of map and deltas the agent reads, as its hello said.</summary>
    public MapForm Form { get; }
    public ChannelReader<SyncResponse> Outbound => _outbound.Reader;

    /// <summary>What the agent last said of its reachability; the hub reports it when it attaches again.</summary>
    public byte[] Endpoints { get; internal set; } = [];

    /// <summary>
    /// Deltas and connect notices that reached the hub while the stream was starting (the hub's lock guards it);
    /// null once started. The start may already contain the deltas, so only those of the start's publisher (its
    /// epoch) after its serial are sent; a notice (epoch 0) is held behind the full map because an agent drops one
    /// from a peer its map does not hold yet.
    /// </summary>
    internal List<(ulong Epoch, ulong Serial, SyncResponse Message)>? Early { get; set; } = new();

    /// <summary>
    /// With a policy, the stream waits for its map: its node's record has not reached the hub yet, or the hub is behind
    /// the publisher's mode. The hub's lock guards it.
    /// </summary>
    internal bool AwaitingMap { get; set; }

    /// <summary>
    /// Whether the last map this stream was sent was a per-node slice (null before its first): a stream whose map is
    /// of the other mode than the hub's gets a new map, whatever brought the hub there (a delta, an attach's reset).
    /// The hub's lock guards it.
    /// </summary>
    internal bool? SentPerNode { get; set; }

    /// <summary>Cancelled when the coordinator ends the stream; <see cref="CloseReason"/> says why.</summary>
    public CancellationToken Closed => _closed.Token;
    public Problem? CloseReason { get; private set; }

    internal void Enqueue(SyncResponse message)
    {
        if (!_outbound.Writer.TryWrite(message)) Close(new Problem(Failure.Aborted, "The agent fell too far behind; reconnect to resume."));
    }

    internal void Close(Problem? reason)
    {
        lock (_lock)
        {
            if (_closed.IsCancellationRequested) return;
            CloseReason = reason;
            _outbound.Writer.TryComplete();
            _closed.Cancel();
        }
    }
}
