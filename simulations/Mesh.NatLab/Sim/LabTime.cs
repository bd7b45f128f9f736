using Mesh.WireGuard.Core;

namespace Mesh.NatLab.Sim;

/// <summary>The scheduler's time as the WireGuard core and path engine read it.</summary>
public sealed class LabClock(Scheduler scheduler) : IClock
{
    public static readonly DateTime Epoch = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    public TimeSpan Now => scheduler.Now;
    public DateTime UtcNow => Epoch + scheduler.Now;
}

/// <summary>The scheduler's time as the coordinator's state reads it, timers included.</summary>
public sealed class LabTimeProvider(Scheduler scheduler) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => new(LabClock.Epoch + scheduler.Now);

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => scheduler.Now.Ticks;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        new LabTimer(scheduler, callback, state, dueTime, period);

    private sealed class LabTimer : ITimer
    {
        private readonly Scheduler _scheduler;
        private readonly TimerCallback _callback;
        private readonly object? _state;
        private long _generation;

        public LabTimer(Scheduler scheduler, TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            _scheduler = scheduler;
            _callback = callback;
            _state = state;
            Change(dueTime, period);
        }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            var generation = ++_generation;
            if (dueTime == Timeout.InfiniteTimeSpan) return true;
            void Fire()
            {
                if (generation != _generation) return;
                _callback(_state);
                if (period > TimeSpan.Zero && period != Timeout.InfiniteTimeSpan && generation == _generation) _scheduler.After(period, Fire);
            }
            _scheduler.After(dueTime, Fire);
            return true;
        }

        public void Dispose() => _generation++;

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
