using System.Globalization;
using System.Net;

namespace Mesh.Coordinator.Hosting;

public static class EndpointParser
{
    /// <summary>"1.2.3.4:80", "[::1]:80" or "host:80"; a host name resolves to its first address (localhost to loopback).</summary>
    public static bool TryParse(string text, out IPEndPoint endpoint, out string error)
    {
        endpoint = null!;
        error = "";
        if (IPEndPoint.TryParse(text, out var parsed) && parsed.Port != 0 && (text.Contains(']') || !text.Contains("::")))
        {
            endpoint = parsed;
            return true;
        }
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 0 or > 65535)
        {
            error = $"\"{text}\" is not HOST:PORT (for example 127.0.0.1:{CoordinatorOptions.DefaultPort} or [::]:{CoordinatorOptions.DefaultPort}).";
            return false;
        }
        var host = text[..colon].Trim('[', ']');
        if (IPAddress.TryParse(host, out var address))
        {
            endpoint = new IPEndPoint(address, port);
            return true;
        }
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            endpoint = new IPEndPoint(IPAddress.Loopback, port);
            return true;
        }
        try
        {
            var addresses = Dns.GetHostAddresses(host);
            if (addresses.Length == 0) throw new System.Net.Sockets.SocketException();
            endpoint = new IPEndPoint(addresses[0], port);
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            error = $"Host \"{host}\" does not resolve.";
            return false;
        }
    }
}
