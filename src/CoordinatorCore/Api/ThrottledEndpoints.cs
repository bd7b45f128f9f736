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
    private readonly TimeSpan _period = TimeSpan.FromSeconds(1 / perSecond);
    private Endpoints? _held;
    private ITimer? _flush;
    private bool _armed;
    private bool _disposed;

    /// <summary>Applies the update now, or holds it; false when it had to wait (the caller counts it).</summary>
    public bool Offer(Endpoints endpoints)
    {
        lock (_lock)
        {
            if (_disposed) return false;
            if (_held is null && _bucket.TryTake(Now))
            {
                hub.UpdateEndpoints(session, endpoints);
                return true;
            }
            _held = endpoints;
            if (!_armed)
            {
                // Armed once per held run: re-arming on every offer would keep a steady flood's update waiting forever.
                if (_flush is null) _flush = time.CreateTimer(static state => ((ThrottledEndpoints)state!).Flush(), this, _period, _period);
                else _flush.Change(_period, _period);
                _armed = true;
            }
            return false;
        }
    }

    /// <summary>The timer: applies the held update when a token is whole, and sleeps when nothing is held.</summary>
    private void Flush()
    {
        lock (_lock)
        {
            if (_disposed) return;
            if (_held is null)
            {
                _flush?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                _armed = false;
                return;
            }
            if (!_bucket.TryTake(Now)) return;
            var held = _held;
            _held = null;
            try
            {
                hub.UpdateEndpoints(session, held);
            }
            catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException or TimeoutException)
            {
                // The coordinator is stopping under the stream: the update has nowhere to go.
            }
        }
    }

    private TimeSpan Now => time.GetUtcNow() - DateTimeOffset.UnixEpoch;

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _held = null;
            _flush?.Dispose();
        }
    }
}
