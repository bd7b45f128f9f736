using System.Net;
using System.Security.Cryptography.X509Certificates;
using Grpc.AspNetCore.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Mesh.Transport.Echo;

/// <summary>The echo service as the coordinator and agent serve theirs: Kestrel endpoints, Grpc.AspNetCore, the same binding.</summary>
public sealed class EchoHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private EchoHost(WebApplication app, EchoService service, Uri? address)
    {
        _app = app;
        Service = service;
        Address = address;
    }

    public EchoService Service { get; }

    /// <summary>The TCP address (https with a certificate), null on a unix socket.</summary>
    public Uri? Address { get; }

    public static Task<EchoHost> StartTcpAsync(X509Certificate2? certificate = null, Action<GrpcServiceOptions>? configure = null) =>
        StartAsync(kestrel => GrpcEndpoints.ListenTcp(kestrel, new IPEndPoint(IPAddress.Loopback, 0), certificate), certificate is not null, configure);

    public static Task<EchoHost> StartUnixAsync(string path) => StartAsync(kestrel => GrpcEndpoints.ListenUnixSocket(kestrel, path), false, null);

    private static async Task<EchoHost> StartAsync(Action<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions> listen, bool tls, Action<GrpcServiceOptions>? configure)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            GrpcEndpoints.Configure(kestrel);
            listen(kestrel);
        });
        builder.Services.AddGrpc(options => configure?.Invoke(options));
        var service = new EchoService();
        var app = builder.Build();
        app.MapGrpcService(ServiceDefinitions.Bind(binder => V1.Echo.BindService(binder, service)));
        await app.StartAsync();
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Uri? address = bound.StartsWith("http://unix:", StringComparison.Ordinal) ? null : new Uri(tls ? bound.Replace("http://", "https://", StringComparison.Ordinal) : bound);
        return new EchoHost(app, service, address);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
