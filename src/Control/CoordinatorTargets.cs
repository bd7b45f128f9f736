using System.Net;
using System.Net.Sockets;

namespace Mesh.Control;

/// <summary>One coordinator replica to try: its URL, and the address to connect to when its name has several.</summary>
public sealed record CoordinatorTarget(Uri Url, IPAddress? Address)
{
    public override string ToString() => Address is null ? Url.ToString() : $"{Url} ({Address})";
}

/// <summary>
/// The coordinator replicas an agent may hold its stream with: every URL given, and a URL whose host name has
/// several addresses counts as one replica per address (looked up again each time the list has been gone
/// through). Each agent starts at a place of its own (from its node key), so agents spread over the replicas;
/// after a failure it moves on to the next.
/// </summary>
public sealed class CoordinatorTargets
{
    private readonly IReadOnlyList<Uri> _urls;
    private readonly Func<string, CancellationToken, Task<IPAddress[]>> _lookup;
    private List<CoordinatorTarget> _targets;
    private int _next;
    private volatile CoordinatorTarget _current;

    public CoordinatorTargets(IReadOnlyList<Uri> urls, int start, Func<string, CancellationToken, Task<IPAddress[]>>? lookup = null)
    {
        if (urls.Count == 0) throw new ArgumentException("at least one coordinator URL is needed", nameof(urls));
        _urls = urls;
        _lookup = lookup ?? Dns.GetHostAddressesAsync;
        _targets = urls.Select(u => new CoordinatorTarget(u, null)).ToList();
        _next = (int)((uint)start % (uint)_targets.Count);
        _current = _targets[_next];
    }

    /// <summary>The replicas for a node, starting at a place its key gives: agents spread over the replicas.</summary>
    public static CoordinatorTargets ForNode(IReadOnlyList<Uri> urls, WireGuard.Keys.PublicKey node) => new(urls, BitConverter.ToInt32(node.Span));

    /// <summary>The replica the agent holds (or last tried) its stream with.</summary>
    public CoordinatorTarget Current => _current;

    public IReadOnlyList<Uri> Urls => _urls;

    /// <summary>The replica to try next; a new round looks the names up again.</summary>
    public async Task<CoordinatorTarget> NextAsync(CancellationToken cancellationToken)
    {
        if (_next >= _targets.Count)
        {
            _targets = await ExpandAsync(cancellationToken).ConfigureAwait(false);
            _next = 0;
        }
        _current = _targets[_next++];
        return _current;
    }

    private async Task<List<CoordinatorTarget>> ExpandAsync(CancellationToken cancellationToken)
    {
        var targets = new List<CoordinatorTarget>();
        foreach (var url in _urls)
        {
            IPAddress[] addresses = [];
            if (url.HostNameType == UriHostNameType.Dns)
            {
                try
                {
                    addresses = await _lookup(url.DnsSafeHost, cancellationToken).ConfigureAwait(false);
                }
                catch (SocketException)
                {
                    // Unresolvable now: kept as a name, so the connection attempt reports why.
                }
            }
            if (addresses.Length <= 1) targets.Add(new CoordinatorTarget(url, null));
            else foreach (var address in addresses) targets.Add(new CoordinatorTarget(url, address));
        }
        return targets;
    }
}
