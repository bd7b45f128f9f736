using Grpc.Core;
using Grpc.Net.Client;
using Mesh.Control;
using Mesh.Transport;
using Mesh.Traversal.Hosting;

namespace Mesh.Agent.Daemon;

/// <summary>The control client's channels in the agent: one Grpc.Net.Client channel per replica, through the HTTP connector (proxy or straight).</summary>
public sealed class GrpcCoordinatorChannels(HttpConnector connector) : ICoordinatorChannels
{
    /// <summary>HTTP/2 pings on the sync stream: a dead connection shows within about 25 s.</summary>
    private static readonly TimeSpan KeepAlive = TimeSpan.FromSeconds(15);

    /// <summary>A full netmap of a large mesh is one message: about 200 bytes a peer.</summary>
    private const int MaxNetmapMessage = 64 * 1024 * 1024;

    private readonly Dictionary<CoordinatorTarget, GrpcChannel> _channels = new();

    public CallInvoker For(CoordinatorTarget target)
    {
        lock (_channels)
        {
            if (!_channels.TryGetValue(target, out var channel))
            {
                var pinned = target.Address is { } address ? connector.PinnedTo(address) : connector;
                _channels[target] = channel = GrpcChannels.ForAddress(target.Url, pinned, KeepAlive, MaxNetmapMessage);
            }
            return channel.CreateCallInvoker();
        }
    }

    public void Reset()
    {
        lock (_channels)
        {
            foreach (var channel in _channels.Values) channel.Dispose();
            _channels.Clear();
        }
    }

    public void Dispose() => Reset();
}
