using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;

namespace Mesh.Transport;

/// <summary>
/// Opens the TCP connections HTTP clients (gRPC channels, relay WebSockets) run on: straight to the host, or
/// through an HTTP proxy with CONNECT, because networks that block UDP often allow TCP only through a proxy.
/// TLS and HTTP/2 run inside the tunnel, so h2c works through a proxy as well as TLS does. A connector pinned to
/// an address connects there instead of looking the host up (one replica of several behind one name), while
/// TLS still checks the certificate against the host name (or the pin: <see cref="ServerTrust"/>).
/// </summary>
public sealed class HttpConnector(ProxySettings? proxy, ServerTrust? trust = null, IPAddress? pinnedAddress = null)
{
    private const int MaxProxyResponse = 8192;
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);

    public ProxySettings? Proxy { get; } = proxy;

    /// <summary>This connector, connecting to <paramref name="address"/> whatever host a URL names.</summary>
    public HttpConnector PinnedTo(IPAddress address) => new(Proxy, Trust, address);

    public ServerTrust Trust { get; } = trust ?? ServerTrust.SystemRoots;

    /// <summary>A connector for the proxy the environment names (if any), trusting the system's CAs or as given.</summary>
    public static HttpConnector FromEnvironment(ServerTrust? trust = null) => new(ProxySettings.FromEnvironment(), trust);

    /// <summary>A handler for HTTP/2 clients: connections through this connector, keepalive pings, several connections when streams run out.</summary>
    public SocketsHttpHandler CreateHandler(TimeSpan keepAlive)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            ConnectCallback = ConnectAsync,
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            KeepAlivePingDelay = keepAlive,
            KeepAlivePingTimeout = keepAlive == Timeout.InfiniteTimeSpan ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(10),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            ConnectTimeout = ConnectTimeout,
        };
        handler.SslOptions.RemoteCertificateValidationCallback = (sender, certificate, _, errors) =>
            Trust.Validate(sender is SslStream { TargetHostName: { Length: > 0 } host } ? host : "(unknown)", certificate, errors);
        return handler;
    }

    public async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var target = context.DnsEndPoint;
        var host = pinnedAddress?.ToString() ?? target.Host;
        if (Proxy is null || !Proxy.Applies(target.Host)) return await OpenAsync(host, target.Port, cancellationToken).ConfigureAwait(false);
        var stream = await OpenAsync(Proxy.Proxy.Host, Proxy.Proxy.Port, cancellationToken).ConfigureAwait(false);
        try
        {
            await TunnelAsync(stream, Authority(host, target.Port), cancellationToken).ConfigureAwait(false);
            return stream;
        }
        catch
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static async ValueTask<NetworkStream> OpenAsync(string host, int port, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(new DnsEndPoint(host, port), cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>CONNECT through the proxy; reads the answer byte by byte so nothing of the tunnel is consumed.</summary>
    private async Task TunnelAsync(Stream stream, string authority, CancellationToken cancellationToken)
    {
        var request = new StringBuilder($"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if (Proxy!.Proxy.UserInfo.Length > 0)
        {
            var credentials = Convert.ToBase64String(Encoding.UTF8.GetBytes(Uri.UnescapeDataString(Proxy.Proxy.UserInfo)));
            request.Append($"Proxy-Authorization: Basic {credentials}\r\n");
        }
        request.Append("\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request.ToString()), cancellationToken).ConfigureAwait(false);

        var response = new byte[MaxProxyResponse];
        var length = 0;
        var one = new byte[1];
        while (length < 4 || !response.AsSpan(length - 4, 4).SequenceEqual("\r\n\r\n"u8))
        {
            if (length == response.Length) throw new HttpRequestException($"proxy {Proxy.Proxy.Authority}: its answer to CONNECT is over {MaxProxyResponse} bytes");
            if (await stream.ReadAsync(one, cancellationToken).ConfigureAwait(false) == 0)
            {
                throw new HttpRequestException($"proxy {Proxy.Proxy.Authority} closed the connection before answering CONNECT {authority}");
            }
            response[length++] = one[0];
        }
        var statusLine = Encoding.ASCII.GetString(response, 0, response.AsSpan(0, length).IndexOf("\r\n"u8));
        var parts = statusLine.Split(' ', 3);
        if (parts.Length < 2 || !parts[0].StartsWith("HTTP/1.", StringComparison.Ordinal) || !int.TryParse(parts[1], out var status))
        {
            throw new HttpRequestException($"proxy {Proxy.Proxy.Authority} answered CONNECT with \"{statusLine}\", not HTTP");
        }
        if (status is < 200 or > 299)
        {
            throw new HttpRequestException($"proxy {Proxy.Proxy.Authority} refused CONNECT {authority}: {statusLine[(parts[0].Length + 1)..]}", null, (HttpStatusCode)status);
        }
    }

    private static string Authority(string host, int port) => (IPAddress.TryParse(host, out var address) && address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{host}]" : host) + ":" + port;
}
