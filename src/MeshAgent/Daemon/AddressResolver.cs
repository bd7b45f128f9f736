using System.Net;
using System.Net.Sockets;
using Mesh.WireGuard.Core;

namespace Mesh.Agent.Daemon;

/// <summary>
/// Turns the netmap's "host:port" (STUN servers, relays) into endpoints. "*" is the host of the coordinator
/// replica the agent holds its stream with, which a coordinator without --public-address announces. Names are
/// looked up once.
/// </summary>
public sealed class AddressResolver(Func<Uri> coordinator)
{
    private readonly Dictionary<string, NetEndpoint?> _cache = new();

    public NetEndpoint? Resolve(string hostAndPort)
    {
        lock (_cache)
        {
            if (_cache.TryGetValue(hostAndPort, out var known)) return known;
            var resolved = Lookup(hostAndPort);
            if (resolved is not null && !hostAndPort.StartsWith("*:", StringComparison.Ordinal)) _cache[hostAndPort] = resolved;
            return resolved;
        }
    }

    private NetEndpoint? Lookup(string text)
    {
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), out var port) || port is <= 0 or > 65535) return null;
        var host = text[..colon].Trim('[', ']');
        if (host == "*") host = coordinator().Host.Trim('[', ']');
        if (IPAddress.TryParse(host, out var address)) return new NetEndpoint(address, port);
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
