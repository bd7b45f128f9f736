using Mesh.WireGuard.Core;

namespace Mesh.WireGuard.RateLimit;

/// <summary>
/// Token buckets per source address for handshake messages under load (the kernel's 50 per second with a
/// burst of 10). IPv6 sources count per /64. Idle buckets are swept so spoofed floods cannot grow it forever.
/// </summary>
public sealed class HandshakeRateLimiter
{
    public const int PacketsPerSecond = 50;
    public const int Burst = 10;
    private const int MaxEntries = 65536;
    private static readonly long TicksPerPacket = TimeSpan.TicksPerSecond / PacketsPerSecond;
    private static readonly long BucketTicks = TicksPerPacket * Burst;
    private static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(1);

    private readonly Dictionary<(ulong, ulong), Bucket> _buckets = new();
    private TimeSpan _lastSweep;

    public int TrackedSources => _buckets.Count;

    public bool Allow(NetEndpoint source, TimeSpan now)
    {
        if (now - _lastSweep > SweepInterval) Sweep(now);
        var key = SourceKey(source);
        if (!_buckets.TryGetValue(key, out var bucket))
        {
            if (_buckets.Count >= MaxEntries) return false;
            _buckets[key] = new Bucket { Tokens = BucketTicks - TicksPerPacket, LastTime = now };
            return true;
        }
        bucket.Tokens = Math.Min(BucketTicks, bucket.Tokens + (now - bucket.LastTime).Ticks);
        bucket.LastTime = now;
        if (bucket.Tokens < TicksPerPacket) return false;
        bucket.Tokens -= TicksPerPacket;
        return true;
    }

    private void Sweep(TimeSpan now)
    {
        _lastSweep = now;
        List<(ulong, ulong)>? idle = null;
        foreach (var (key, bucket) in _buckets)
        {
            if (now - bucket.LastTime > SweepInterval) (idle ??= new()).Add(key);
        }
        if (idle is null) return;
        foreach (var key in idle) _buckets.Remove(key);
    }

    private static (ulong, ulong) SourceKey(NetEndpoint source)
    {
        Span<byte> bytes = stackalloc byte[18];
        var length = source.WriteBytes(bytes);
        if (length == 6) return (0, BitConverter.ToUInt32(bytes));
        return (BitConverter.ToUInt64(bytes), 0);
    }

    private sealed class Bucket
    {
        public long Tokens;
        public TimeSpan LastTime;
    }
}
