namespace Mesh.Traversal;

/// <summary>
/// A token bucket on a clock the caller reads (the engine's, a service's injected one): a burst, then a steady
/// rate. Ours rather than System.Threading.RateLimiting's, whose limiters read the real clock: these run on the
/// NAT lab's virtual time too. Not thread-safe: its owner serializes calls.
/// </summary>
public sealed class TokenBucket(int burst, double perSecond)
{
    private double _tokens = burst;
    private TimeSpan? _refilled;

    public bool TryTake(TimeSpan now)
    {
        _tokens = Math.Min(burst, _tokens + (now - (_refilled ?? now)).TotalSeconds * perSecond);
        _refilled = now;
        if (_tokens < 1) return false;
        _tokens--;
        return true;
    }
}
