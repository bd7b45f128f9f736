using Microsoft.Extensions.Logging;

namespace Mesh.WireGuard.Host;

/// <summary>The threads that move an interface's packets.</summary>
public enum IoThread
{
    Udp,
    Tun,
    Timers,
    Handshake,
    Crypto,
}

/// <summary>
/// Failures on an interface's I/O threads. Each is caught where it happened (one datagram, one packet, one tick),
/// so the thread goes on and the tunnel stays up; it is counted by thread and logged at warning, the first of each
/// thread at once and then at most once a minute with the count since. Thread-safe.
/// </summary>
public sealed class IoFailures(ILogger logger, TimeProvider? time = null)
{
    private static readonly TimeSpan LogInterval = TimeSpan.FromMinutes(1);
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly long[] _counts = new long[Enum.GetValues<IoThread>().Length];
    private readonly long[] _loggedAt = Enumerable.Repeat(long.MinValue, Enum.GetValues<IoThread>().Length).ToArray();
    private readonly long[] _loggedCount = new long[Enum.GetValues<IoThread>().Length];

    public long Count(IoThread thread) => Interlocked.Read(ref _counts[(int)thread]);

    public long Total
    {
        get
        {
            long total = 0;
            foreach (var thread in Enum.GetValues<IoThread>()) total += Count(thread);
            return total;
        }
    }

    public void Record(IoThread thread, Exception exception)
    {
        var count = Interlocked.Increment(ref _counts[(int)thread]);
        var now = _time.GetTimestamp();
        var last = Interlocked.Read(ref _loggedAt[(int)thread]);
        if (last != long.MinValue && _time.GetElapsedTime(last, now) < LogInterval) return;
        if (Interlocked.CompareExchange(ref _loggedAt[(int)thread], now, last) != last) return;
        var since = count - Interlocked.Exchange(ref _loggedCount[(int)thread], count);
        logger.LogWarning(exception, "The {Thread} thread failed on one datagram or packet and goes on ({Since} failures since the last report, {Count} in all)", thread, since, count);
    }
}
