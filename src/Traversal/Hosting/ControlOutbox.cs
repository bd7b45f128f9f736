using System.Threading.Channels;
using Google.Protobuf;
using Mesh.Protos.V1;
using Mesh.Traversal.Paths;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Hosting;

/// <summary>
/// What the path engine asks of the coordinator, held for the control client's stream: the latest endpoints
/// (every session's hello carries them) and the requests queued since the session began (at most 256, the
/// oldest dropped first). The engine is made before the control client, which applies the netmap to the node
/// that holds the engine, so the two meet here rather than point at each other.
/// </summary>
/// <param name="synchronousSends">Continue the stream's writer inline (the NAT lab's single thread).</param>
public sealed class ControlOutbox(bool synchronousSends = false) : IControlRequests
{
    private readonly object _lock = new();
    private Channel<SyncRequest> _queue = NewQueue(synchronousSends);
    private Endpoints _endpoints = new();

    public void PublishEndpoints(Endpoints endpoints)
    {
        lock (_lock)
        {
            _endpoints = endpoints;
            _queue.Writer.TryWrite(new SyncRequest { Endpoints = endpoints });
        }
    }

    public void RequestConnect(PublicKey peer)
    {
        var request = new SyncRequest { Connect = new ConnectRequest { PeerKey = ByteString.CopyFrom(peer.Span) } };
        lock (_lock) _queue.Writer.TryWrite(request);
    }

    /// <summary>A session opens: whatever was queued before is stale, as its hello carries the current endpoints.</summary>
    internal (Endpoints Endpoints, ChannelReader<SyncRequest> Requests) StartSession()
    {
        lock (_lock)
        {
            _queue = NewQueue(synchronousSends);
            return (_endpoints, _queue.Reader);
        }
    }

    private static Channel<SyncRequest> NewQueue(bool synchronousSends) => Channel.CreateBounded<SyncRequest>(new BoundedChannelOptions(256)
    {
        FullMode = BoundedChannelFullMode.DropOldest,
        SingleReader = true,
        AllowSynchronousContinuations = synchronousSends,
    });
}
