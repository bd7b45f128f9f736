using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Mesh.Rpc.Server;

/// <summary>Kestrel settings for serving gRPC: h2c prior knowledge in the clear, ALPN h2 under TLS.</summary>
public static class GrpcHosting
{
    public static void ConfigureForGrpc(this KestrelServerOptions kestrel, GrpcServerOptions options)
    {
        kestrel.AddServerHeader = false;
        kestrel.Limits.Http2.KeepAlivePingDelay = options.KeepAlivePingDelay;
        kestrel.Limits.Http2.KeepAlivePingTimeout = options.KeepAlivePingTimeout;
        // Every agent keeps streams open; the default of 100 per connection is for browsers.
        kestrel.Limits.Http2.MaxStreamsPerConnection = 1000;
        kestrel.Limits.MaxConcurrentConnections = null;
        kestrel.Limits.MaxConcurrentUpgradedConnections = null;
    }

    /// <summary>Listens on a TCP endpoint: TLS with ALPN when a certificate is given, h2c otherwise.</summary>
    public static void ListenGrpc(this KestrelServerOptions kestrel, IPEndPoint endpoint, X509Certificate2? certificate = null)
    {
        kestrel.Listen(endpoint, listen =>
        {
            if (certificate is null)
            {
                listen.Protocols = HttpProtocols.Http2;
            }
            else
            {
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                listen.UseHttps(certificate);
            }
        });
    }

    /// <summary>Listens on a unix socket (h2c), for local control APIs.</summary>
    public static void ListenGrpcUnixSocket(this KestrelServerOptions kestrel, string path)
    {
        if (File.Exists(path)) File.Delete(path);
        kestrel.ListenUnixSocket(path, listen => listen.Protocols = HttpProtocols.Http2);
    }

    public static IApplicationBuilder UseGrpcServices(this IApplicationBuilder app, GrpcServiceDispatcher dispatcher) =>
        app.Use((context, next) => dispatcher.InvokeAsync(context, next));
}
