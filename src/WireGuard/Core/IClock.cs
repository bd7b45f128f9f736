using System.Diagnostics;

namespace Mesh.WireGuard.Core;

/// <summary>Time as the protocol cores see it: a monotonic clock for timers and a wall clock for TAI64N.</summary>
public interface IClock
{
    /// <summary>Monotonic time since an arbitrary origin.</summary>
    TimeSpan Now { get; }

    DateTime UtcNow { get; }
}

public sealed class SystemClock : IClock
{
    public static readonly SystemClock Instance = new();

    public TimeSpan Now => Stopwatch.GetElapsedTime(0);
    public DateTime UtcNow => DateTime.UtcNow;
}

/// <summary>A clock that moves only when told to; tests and the NAT lab drive it.</summary>
public sealed class ManualClock(DateTime? start = null) : IClock
{
    private long _ticks = TimeSpan.FromHours(1).Ticks;
    private readonly DateTime _wallStart = start ?? new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    public TimeSpan Now => TimeSpan.FromTicks(Interlocked.Read(ref _ticks));
    public DateTime UtcNow => _wallStart + Now;

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}
