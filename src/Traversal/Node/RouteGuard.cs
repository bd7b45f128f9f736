using System.Net;
using Mesh.WireGuard.Keys;
using Microsoft.Extensions.Logging;

namespace Mesh.Traversal.Node;

/// <summary>
/// Which of the prefixes a coordinator names for a peer this host takes, as the peer's allowed IPs and as routes
/// into the interface. The agent trusts the coordinator for its peers, never for its host: a prefix must lie
/// inside the mesh prefixes (host routes only, when the map names none), and must not cover the default route,
/// the coordinator, a relay, a STUN server, the default gateway or any network of the host's own interfaces.
/// Anything else is dropped, counted and logged once (per peer and prefix); the rest still apply. No I/O: the
/// agent tells it the host's side (<see cref="SetHost"/>), the node the map's side.
/// </summary>
public sealed class RouteGuard(ILogger logger)
{
    private readonly HashSet<(PublicKey Peer, string Prefix)> _told = new();
    private List<IPNetwork> _mesh = [];
    private IReadOnlyList<IPNetwork> _localNetworks = [];
    private IReadOnlyList<(IPAddress Address, string What)> _hostAddresses = [];
    private IReadOnlyList<(IPAddress Address, string What)> _mapAddresses = [];

    /// <summary>Prefixes refused so far, each time a map named them.</summary>
    public long Refused { get; private set; }

    /// <summary>The host's own networks and the addresses it must keep reaching outside the mesh (coordinator, gateway); true when they changed.</summary>
    public bool SetHost(IReadOnlyList<IPNetwork> localNetworks, IReadOnlyList<(IPAddress Address, string What)> addresses)
    {
        if (localNetworks.SequenceEqual(_localNetworks) && addresses.SequenceEqual(_hostAddresses)) return false;
        (_localNetworks, _hostAddresses) = (localNetworks, addresses);
        return true;
    }

    /// <summary>What the map says: its mesh prefixes, and the STUN servers and relays it names; true when they changed.</summary>
    public bool SetMap(IReadOnlyList<string> meshPrefixes, IReadOnlyList<(IPAddress Address, string What)> addresses)
    {
        var mesh = new List<IPNetwork>();
        foreach (var text in meshPrefixes)
        {
            if (IPNetwork.TryParse(text, out var prefix) && prefix.PrefixLength > 0) mesh.Add(prefix);
        }
        if (mesh.SequenceEqual(_mesh) && addresses.SequenceEqual(_mapAddresses)) return false;
        (_mesh, _mapAddresses) = (mesh, addresses);
        return true;
    }

    /// <summary>The prefixes of <paramref name="texts"/> this host takes for <paramref name="peer"/>.</summary>
    public List<IPNetwork> Admit(PublicKey peer, string peerName, IEnumerable<string> texts)
    {
        var admitted = new List<IPNetwork>();
        foreach (var text in texts)
        {
            if (!IPNetwork.TryParse(text, out var prefix))
            {
                Refuse(peer, peerName, text, "it is not a prefix");
                continue;
            }
            if (Refusal(prefix) is { } reason) Refuse(peer, peerName, text, reason);
            else admitted.Add(prefix);
        }
        return admitted;
    }

    /// <summary>Why the host must not route <paramref name="prefix"/> into the mesh; null when it may.</summary>
    public string? Refusal(IPNetwork prefix)
    {
        if (prefix.PrefixLength == 0) return "it is a default route";
        var inMesh = false;
        foreach (var mesh in _mesh)
        {
            inMesh |= mesh.BaseAddress.AddressFamily == prefix.BaseAddress.AddressFamily && mesh.PrefixLength <= prefix.PrefixLength && mesh.Contains(prefix.BaseAddress);
        }
        var hostRoute = prefix.PrefixLength == (prefix.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128);
        if (!inMesh && (_mesh.Count > 0 || !hostRoute)) return _mesh.Count > 0 ? $"it is outside the mesh prefixes ({string.Join(", ", _mesh)})" : "the map names no mesh prefixes, and it is not a host route";
        foreach (var (address, what) in _hostAddresses.Concat(_mapAddresses))
        {
            if (prefix.Contains(address)) return $"it covers {what} {address}";
        }
        foreach (var network in _localNetworks)
        {
            if (Overlap(prefix, network)) return $"it overlaps this host's network {network}";
        }
        return null;
    }

    private static bool Overlap(IPNetwork a, IPNetwork b) =>
        a.BaseAddress.AddressFamily == b.BaseAddress.AddressFamily && (a.Contains(b.BaseAddress) || b.Contains(a.BaseAddress));

    private void Refuse(PublicKey peer, string peerName, string prefix, string reason)
    {
        Refused++;
        if (_told.Add((peer, prefix))) logger.LogWarning("Ignored the route {Prefix} of peer {Peer}: {Reason}", prefix, peerName, reason);
    }
}
