using System.Net;
using System.Net.WebSockets;

namespace Mesh.Transport;

/// <summary>
/// Opens relay WebSockets the way the coordinator serves them: over HTTP/2 (RFC 8441 extended CONNECT) as
/// h2c for ws:// and by ALPN for wss://, falling back to an HTTP/1.1 Upgrade over TLS when HTTP/2 fails
/// (middleboxes that strip h2 or cannot carry extended CONNECT), through the connector's proxy when one is set.
/// </summary>
public sealed class RelayWebSocketConnector(HttpConnector connector) : IDisposable
{
    /// <summary>WebSocket and HTTP/2 pings: a dead connection shows within about 25 s, and NATs and proxies keep it.</summary>
    private static readonly TimeSpan KeepAlive = TimeSpan.FromSeconds(15);

    private readonly HttpMessageInvoker _invoker = new(connector.CreateHandler(KeepAlive));

    /// <summary>Set once HTTP/2 failed over TLS here: HTTP/1.1 goes first from then on.</summary>
    private volatile bool _preferHttp11;

    public async ValueTask<(WebSocket Socket, string Transport)> ConnectAsync(Uri url, CancellationToken cancellationToken)
    {
        if (url.Scheme != "wss") return await OpenAsync(url, HttpVersion.Version20, HttpVersionPolicy.RequestVersionExact, cancellationToken).ConfigureAwait(false);
        if (!_preferHttp11)
        {
            try
            {
                return await OpenAsync(url, HttpVersion.Version20, HttpVersionPolicy.RequestVersionOrLower, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when ((ex is WebSocketException or HttpRequestException) && IsHttp2Failure(ex))
            {
                _preferHttp11 = true;
            }
        }
        return await OpenAsync(url, HttpVersion.Version11, HttpVersionPolicy.RequestVersionExact, cancellationToken).ConfigureAwait(false);
    }

    public void Dispose() => _invoker.Dispose();

    private async ValueTask<(WebSocket Socket, string Transport)> OpenAsync(Uri url, Version version, HttpVersionPolicy policy, CancellationToken cancellationToken)
    {
        var socket = new ClientWebSocket();
        socket.Options.HttpVersion = version;
        socket.Options.HttpVersionPolicy = policy;
        socket.Options.KeepAliveInterval = KeepAlive;
        socket.Options.KeepAliveTimeout = TimeSpan.FromSeconds(10);
        socket.Options.CollectHttpResponseDetails = true;
        try
        {
            await socket.ConnectAsync(url, _invoker, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        // RFC 8441 answers 200; an HTTP/1.1 Upgrade answers 101.
        var http = socket.HttpStatusCode == HttpStatusCode.SwitchingProtocols ? "HTTP/1.1 Upgrade" : "HTTP/2";
        var security = url.Scheme == "wss" ? "over TLS" : "h2c";
        var proxy = connector.Proxy is { } settings && settings.Applies(url.Host) ? $", through proxy {settings.Proxy.Authority}" : "";
        return (socket, $"{http} {security}{proxy}");
    }

    /// <summary>HTTP/2 itself failed (not the network or the certificate): worth trying HTTP/1.1.</summary>
    private static bool IsHttp2Failure(Exception ex)
    {
        for (var e = ex; e is not null; e = e.InnerException)
        {
            if (e is HttpRequestException { HttpRequestError: HttpRequestError.HttpProtocolError or HttpRequestError.ExtendedConnectNotSupported or HttpRequestError.VersionNegotiationError }) return true;
        }
        return false;
    }
}
