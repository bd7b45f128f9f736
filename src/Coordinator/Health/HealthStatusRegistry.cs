using System.Threading.Channels;
using Grpc.Health.V1;

namespace Mesh.Coordinator.Health;

/// <summary>The serving status of each service ("" is the server as a whole), with change notifications for Watch.</summary>
public sealed class HealthStatusRegistry
{
    private readonly object _lock = new();
    private readonly Dictionary<string, HealthCheckResponse.Types.ServingStatus> _statuses = new(StringComparer.Ordinal);
    private readonly List<Channel<string>> _watchers = new();

    public void SetStatus(string service, HealthCheckResponse.Types.ServingStatus status)
    {
        lock (_lock)
        {
            if (_statuses.TryGetValue(service, out var old) && old == status) return;
            _statuses[service] = status;
            foreach (var watcher in _watchers) watcher.Writer.TryWrite(service);
        }
    }

    public HealthCheckResponse.Types.ServingStatus? GetStatus(string service)
    {
        lock (_lock) return _statuses.TryGetValue(service, out var status) ? status : null;
    }

    /// <summary>A reader of the names of services whose status changed; dispose the subscription to stop.</summary>
    public Subscription Subscribe()
    {
        // Only the latest change matters to a watcher; a slow one must not hold memory.
        var channel = Channel.CreateBounded<string>(new BoundedChannelOptions(64) { FullMode = BoundedChannelFullMode.DropOldest });
        lock (_lock) _watchers.Add(channel);
        return new Subscription(this, channel);
    }

    public sealed class Subscription(HealthStatusRegistry registry, Channel<string> channel) : IDisposable
    {
        public ChannelReader<string> Changes => channel.Reader;

        public void Dispose()
        {
            lock (registry._lock) registry._watchers.Remove(channel);
        }
    }
}
