using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Mesh.Transport;

/// <summary>Kestrel endpoints that serve gRPC: h2c (HTTP/2 with prior knowledge) without a certificate, TLS with ALPN otherwise.</summary>
public static class GrpcEndpoints
{
    /// <summary>
    /// Limits for long-lived streams from many agents: pings find dead connections, and nothing else times a stream out.
    /// </summary>
    public static void Configure(KestrelServerOptions kestrel)
    {
        kestrel.AddServerHeader = false;
        kestrel.Limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(30);
        kestrel.Limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(20);
        kestrel.Limits.MaxConcurrentConnections = null;
        kestrel.Limits.MaxConcurrentUpgradedConnections = null;
    }

    /// <summary>
    /// gRPC on TCP. With TLS, HTTP/1.1 is offered next to h2 so that the relay's WebSocket can still be
    /// reached through middleboxes that strip h2 from ALPN; cleartext is HTTP/2 only (gRPC needs it, and
    /// Kestrel cannot tell the two apart without TLS).
    /// </summary>
    public static void ListenTcp(KestrelServerOptions kestrel, IPEndPoint endpoint, X509Certificate2? certificate) =>
        kestrel.Listen(endpoint, listen =>
        {
            if (certificate is null)
            {
                listen.Protocols = HttpProtocols.Http2;
                return;
            }
            listen.Protocols = HttpProtocols.Http1AndHttp2;
            listen.UseHttps(certificate);
        });

    public static void ListenUnixSocket(KestrelServerOptions kestrel, string path) =>
        kestrel.ListenUnixSocket(path, listen => listen.Protocols = HttpProtocols.Http2);
}
