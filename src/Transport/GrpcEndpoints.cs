using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Mesh.Transport;

/// <summary>Kestrel endpoints that serve gRPC: h2c (HTTP/2 with prior knowledge) without a certificate, TLS with ALPN otherwise.</summary>
public static class GrpcEndpoints
{
    /// <summary>Agents hold one connection each (or share one through a proxy); room for 10,000 agents several times over.</summary>
    public const int MaxConnections = 50_000;

    /// <summary>HTTP/1.1 WebSocket upgrades (the relay's TCP transport where h2 is stripped).</summary>
    public const int MaxUpgradedConnections = 20_000;

    /// <summary>
    /// Limits for long-lived streams from many agents: pings find dead connections, and nothing else times a stream out.
    /// Connections are bounded (a flood of them costs a refusal, not memory), and a connection must send its request
    /// headers within 10 s; what a request then must send in time is the service's to say (a sync stream's hello).
    /// </summary>
    public static void Configure(KestrelServerOptions kestrel)
    {
        kestrel.AddServerHeader = false;
        kestrel.Limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(30);
        kestrel.Limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(20);
        kestrel.Limits.MaxConcurrentConnections = MaxConnections;
        kestrel.Limits.MaxConcurrentUpgradedConnections = MaxUpgradedConnections;
        kestrel.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
    }

    /// <summary>
    /// gRPC on TCP. With TLS, HTTP/1.1 is offered next to h2 so that the relay's WebSocket can still be
    /// reached through middleboxes that strip h2 from ALPN; cleartext is HTTP/2 only (gRPC needs it, and
    /// Kestrel cannot tell the two apart without TLS).
    /// </summary>
    /// <param name="configure">More for this listener alone (connection middleware), applied before TLS.</param>
    public static void ListenTcp(KestrelServerOptions kestrel, IPEndPoint endpoint, X509Certificate2? certificate, Action<ListenOptions>? configure = null) =>
        kestrel.Listen(endpoint, listen =>
        {
            configure?.Invoke(listen);
            if (certificate is null)
            {
                listen.Protocols = HttpProtocols.Http2;
                return;
            }
            listen.Protocols = HttpProtocols.Http1AndHttp2;
            listen.UseHttps(certificate);
        });

    public static void ListenUnixSocket(KestrelServerOptions kestrel, string path, Action<ListenOptions>? configure = null) =>
        kestrel.ListenUnixSocket(path, listen =>
        {
            configure?.Invoke(listen);
            listen.Protocols = HttpProtocols.Http2;
        });
}
