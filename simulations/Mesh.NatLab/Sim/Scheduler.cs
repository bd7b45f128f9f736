using System.Runtime.ExceptionServices;

namespace Mesh.NatLab.Sim;

/// <summary>Virtual time: events run in time order (ties in the order they were scheduled), as fast as the CPU allows.</summary>
public sealed class Scheduler
{
    private readonly PriorityQueue<Action, (long Ticks, long Sequence)> _events = new();
    private long _sequence;

    public TimeSpan Now { get; private set; }

    private readonly int _thread = Environment.CurrentManagedThreadId;

    /// <summary>
    /// The lab runs on a thread with no synchronization context, so awaits in the production code it drives resume
    /// right here when a later event (or a call the scenario makes) completes them, as on any plain thread; a test
    /// framework's context would send them to other threads, and a method resumed under it would keep sending them there.
    /// </summary>
    public Scheduler()
    {
        if (SynchronizationContext.Current is { } context) throw new InvalidOperationException($"The lab must run on a thread with no synchronization context, not {context.GetType().Name}'s (run it through OffContext).");
    }

    /// <summary>Runs a scenario on a thread with no synchronization context, as the scheduler needs (a test framework's thread has one).</summary>
    public static T OffContext<T>(Func<T> scenario)
    {
        if (SynchronizationContext.Current is null) return scenario();
        // A thread of its own: a task waited on could be inlined right back onto this thread.
        T result = default!;
        ExceptionDispatchInfo? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = scenario();
            }
            catch (Exception ex)
            {
                failure = ExceptionDispatchInfo.Capture(ex);
            }
        });
        thread.Start();
        thread.Join();
        failure?.Throw();
        return result;
    }

    /// <inheritdoc cref="OffContext{T}(Func{T})"/>
    public static void OffContext(Action scenario) => OffContext(() =>
    {
        scenario();
        return true;
    });

    /// <summary>Events are scheduled from the lab's own thread only: the queue is not thread-safe, and virtual time cannot follow other threads.</summary>
    public void At(TimeSpan when, Action action)
    {
        if (Environment.CurrentManagedThreadId != _thread) throw new InvalidOperationException($"An event was scheduled from thread {Environment.CurrentManagedThreadId}, not the lab's thread {_thread}: some awaited code resumed elsewhere.");
        _events.Enqueue(action, (Math.Max(when.Ticks, Now.Ticks), _sequence++));
    }

    public void After(TimeSpan delay, Action action) => At(Now + delay, action);

    /// <summary>Runs <paramref name="action"/> now and then every <paramref name="interval"/> while it returns true.</summary>
    public void Every(TimeSpan interval, Func<bool> action)
    {
        void Run()
        {
            if (action()) After(interval, Run);
        }
        After(TimeSpan.Zero, Run);
    }

    public void RunUntil(TimeSpan end)
    {
        while (_events.TryPeek(out _, out var key) && key.Ticks <= end.Ticks)
        {
            var action = _events.Dequeue();
            Now = TimeSpan.FromTicks(key.Ticks);
            action();
        }
        Now = end;
    }

    /// <summary>Runs until <paramref name="condition"/> holds (checked after every event) or <paramref name="limit"/> passes; true if it held.</summary>
    public bool RunUntil(Func<bool> condition, TimeSpan limit)
    {
        var end = Now + limit;
        while (!condition())
        {
            if (!_events.TryPeek(out _, out var key) || key.Ticks > end.Ticks)
            {
                Now = end;
                return condition();
            }
            var action = _events.Dequeue();
            Now = TimeSpan.FromTicks(key.Ticks);
            action();
        }
        return true;
    }
}
