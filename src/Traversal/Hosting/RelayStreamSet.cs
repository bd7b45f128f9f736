using System.Collections.Concurrent;
using System.Net.WebSockets;
using Mesh.Control;
using Microsoft.Extensions.Logging;

namespace Mesh.Traversal.Hosting;

/// <summary>
/// An agent's TCP links to relays (<see cref="RelayStreamLink"/>), one per relay it needed one for: opened on the
/// first frame for that relay, at the URL the netmap gives it (relative to the coordinator the agent talks to), and
/// dialled again after a network change. How a socket is opened is the caller's (the agent's HTTP connector, or the
/// NAT lab's virtual TCP).
/// </summary>
/// <param name="coordinators">Where a relative URL ("/relay": a single coordinator's own relay) lives.</param>
/// <param name="received">A frame from a relay, with the relay's id.</param>
public sealed class RelayStreamSet(
    CoordinatorTargets coordinators,
    Func<Uri, CancellationToken, ValueTask<(WebSocket Socket, string Transport)>> connect,
    Action<string, ReadOnlyMemory<byte>> received,
    ILogger logger,
    TimeProvider? time = null,
    bool synchronousSends = false) : IDisposable
{
    private readonly ConcurrentDictionary<string, RelayStreamLink> _links = new();
    private readonly object _opening = new();
    private bool _disposed;

    /// <summary>The links opened so far, for `mesh-agent status`.</summary>
    public ICollection<RelayStreamLink> Links => _links.Values;

    /// <summary>Sends a frame over the relay's link, opening it first; dropped for a relay without a stream URL.</summary>
    public void Send(Protos.V1.Relay relay, ReadOnlySpan<byte> frame)
    {
        if (!_links.TryGetValue(relay.Id, out var link) && (link = Open(relay.Id, relay.TcpUrl)) is null) return;
        link.Send(frame);
    }

    /// <summary>Opens a relay's link once (a link starts dialling as it is made), never after <see cref="Dispose"/>.</summary>
    private RelayStreamLink? Open(string relayId, string tcpUrl)
    {
        lock (_opening)
        {
            if (_disposed) return null;
            if (_links.TryGetValue(relayId, out var link)) return link;
            if (WebSocketUrl(tcpUrl, coordinators.Current.Url) is not { } url) return null;
            link = new RelayStreamLink(relayId, url, cancellationToken => connect(url, cancellationToken), frame => received(relayId, frame), logger, time, synchronousSends);
            _links[relayId] = link;
            return link;
        }
    }

    /// <summary>The host's addresses changed: every link dials again rather than wait for keepalives to find it dead.</summary>
    public void Reconnect()
    {
        foreach (var link in _links.Values) link.Reconnect();
    }

    /// <summary>
    /// Where a relay of the netmap takes streams: its TCP URL, relative to the coordinator's when it is a path
    /// (a single coordinator's own relay), as a WebSocket URL; null for a relay without one.
    /// </summary>
    public static Uri? WebSocketUrl(string? tcpUrl, Uri coordinator)
    {
        if (string.IsNullOrEmpty(tcpUrl)) return null;
        var absolute = new Uri(coordinator, tcpUrl);
        return new UriBuilder(absolute) { Scheme = absolute.Scheme == "https" ? "wss" : "ws" }.Uri;
    }

    public void Dispose()
    {
        lock (_opening) _disposed = true;
        foreach (var link in _links.Values) link.Dispose();
    }
}
