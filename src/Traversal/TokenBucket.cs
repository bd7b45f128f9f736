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
        Refill(now);
        if (_tokens < 1) return false;
        _tokens--;
        return true;
    }

    /// <summary>Takes a token whether or not a whole one is there (work that has to go out): what is short is not owed later.</summary>
    public void Spend(TimeSpan now)
    {
        Refill(now);
        _tokens = Math.Max(0, _tokens - 1);
    }

    /// <summary>How long until a token is there to take (zero when one is now).</summary>
    public TimeSpan UntilToken(TimeSpan now)
    {
        Refill(now);
        return _tokens >= 1 ? TimeSpan.Zero : TimeSpan.FromSeconds((1 - _tokens) / perSecond);
    }

    private void Refill(TimeSpan now)
    {
        _tokens = Math.Min(burst, _tokens + (now - (_refilled ?? now)).TotalSeconds * perSecond);
        _refilled = now;
    }
}
