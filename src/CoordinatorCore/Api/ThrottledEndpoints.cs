using Mesh.Coordinator.Sync;
using Mesh.Protos.V1;
using Mesh.Traversal;

namespace Mesh.Coordinator.Api;

/// <summary>
/// One stream's endpoint updates at a bounded rate: a burst, then a steady rate. An update is the node's whole
/// reachability, not an event, so one over the rate is not dropped but held, replaced by any later one, and applied
/// when the rate allows: a member cannot make the mesh chase addresses faster than that, and its last word still
/// reaches its peers. Thread-safe (the stream's reader and the flush timer).
/// </summary>
internal sealed class ThrottledEndpoints(SyncHub hub, SyncSession session, TimeProvider time, int burst, double perSecond) : IDisposable
{
    private readonly object _lock = new();
    private readonly TokenBucket _bucket = new(burst, perSecond);
    private Endpoints? _held;
    private ITimer? _flush;

    /// <summary>Applies the update now, or holds it; false when it had to wait (the caller counts it).</summary>
    public bool Offer(Endpoints endpoints)
    {
        lock (_lock)
        {
            if (_held is null && _bucket.TryTake(Now))
            {
                hub.UpdateEndpoints(session, endpoints);
                return true;
            }
            _held = endpoints;
            var period = TimeSpan.FromSeconds(1 / perSecond);
            _flush ??= time.CreateTimer(static state => ((ThrottledEndpoints)state!).Flush(), this, period, period);
            return false;
        }
    }

    private void Flush()
    {
        lock (_lock)
        {
            if (_held is null || !_bucket.TryTake(Now)) return;
            hub.UpdateEndpoints(session, _held);
            _held = null;
        }
    }

    private TimeSpan Now => time.GetUtcNow() - DateTimeOffset.UnixEpoch;

    public void Dispose()
    {
        lock (_lock) _flush?.Dispose();
    }
}
