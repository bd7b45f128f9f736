using System.Net;

namespace Mesh.Transport;

/// <summary>
/// The HTTP proxy the environment names, read the way gRPC's own clients read it: grpc_proxy, then
/// https_proxy/HTTPS_PROXY, then http_proxy/HTTP_PROXY, for every target (the tunnel is always CONNECT),
/// with no_proxy/NO_PROXY listing hosts, domain suffixes, addresses and prefixes that go direct.
/// </summary>
public sealed class ProxySettings
{
    private static readonly string[] ProxyVariables = ["grpc_proxy", "https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"];
    private readonly string[] _bypass;

    private ProxySettings(Uri proxy, string[] bypass)
    {
        Proxy = proxy;
        _bypass = bypass;
    }

    /// <summary>The proxy's URL (http://[user:password@]host:port).</summary>
    public Uri Proxy { get; }

    /// <summary>Null when no proxy is set; throws <see cref="FormatException"/> naming the variable whose value is not a proxy URL.</summary>
    public static ProxySettings? FromEnvironment(Func<string, string?>? read = null)
    {
        read ??= Environment.GetEnvironmentVariable;
        foreach (var name in ProxyVariables)
        {
            var value = read(name);
            if (string.IsNullOrWhiteSpace(value)) continue;
            var text = value.Contains("://", StringComparison.Ordinal) ? value.Trim() : "http://" + value.Trim();
            if (!Uri.TryCreate(text, UriKind.Absolute, out var proxy) || proxy.Scheme != "http" || proxy.Host.Length == 0)
            {
                throw new FormatException($"{name}: \"{value}\" is not an HTTP proxy URL like http://proxy.example:3128.");
            }
            var bypass = (read("no_proxy") ?? read("NO_PROXY") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            return new ProxySettings(proxy, bypass);
        }
        return null;
    }

    /// <summary>True when connections to the host go through the proxy.</summary>
    public bool Applies(string host)
    {
        host = host.Trim('[', ']');
        var address = IPAddress.TryParse(host, out var parsed) ? parsed : null;
        foreach (var entry in _bypass)
        {
            if (entry == "*") return false;
            if (address is not null)
            {
                if (IPNetwork.TryParse(entry, out var prefix) && prefix.Contains(address)) return false;
                if (IPAddress.TryParse(entry.Trim('[', ']'), out var exact) && exact.Equals(address)) return false;
                continue;
            }
            var suffix = entry.TrimStart('*').TrimStart('.');
            if (host.Equals(suffix, StringComparison.OrdinalIgnoreCase) || host.EndsWith("." + suffix, StringComparison.OrdinalIgnoreCase)) return false;
        }
        return true;
    }
}
