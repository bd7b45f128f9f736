using System.Net;
using System.Net.Sockets;
using Mesh.Control;
using Mesh.WireGuard.Core;

namespace Mesh.Agent.Daemon;

/// <summary>
/// Turns the netmap's "host:port" (STUN servers, relays) into endpoints. "*" is the host of the coordinator
/// replica the agent holds its stream with, which a coordinator without --public-address announces. Names are
/// looked up once; the lookup runs outside the cache's lock (callers hold none either: see MeshNode).
/// </summary>
public sealed class AddressResolver(CoordinatorTargets coordinators)
{
    private readonly Dictionary<string, NetEndpoint> _cache = new(StringComparer.Ordinal);

    public NetEndpoint? Resolve(string hostAndPort)
    {
        var colon = hostAndPort.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(hostAndPort.AsSpan(colon + 1), out var port) || port is <= 0 or > 65535) return null;
        var host = hostAndPort[..colon].Trim('[', ']');
        if (host == "*") host = coordinators.Current.Url.Host.Trim('[', ']');
        if (IPAddress.TryParse(host, out var address)) return new NetEndpoint(address, port);
        var name = $"{host}:{port}";
        lock (_cache)
        {
            if (_cache.TryGetValue(name, out var known)) return known;
        }
        if (Lookup(host, port) is not { } resolved) return null;
        lock (_cache) _cache[name] = resolved;
        return resolved;
    }

    private static NetEndpoint? Lookup(string host, int port)
    {
        try
        {
            var addresses = Dns.GetHostAddresses(host);
            var chosen = Array.Find(addresses, a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.FirstOrDefault();
            return chosen is null ? null : new NetEndpoint(chosen, port);
        }
        catch (SocketException)
        {
            return null;
        }
    }
}
