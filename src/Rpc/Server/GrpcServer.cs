using System.Net;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Mesh.Rpc.Server;

/// <summary>A Kestrel host that serves gRPC services and nothing else.</summary>
public sealed class GrpcServer : IAsyncDisposable
{
    private readonly GrpcServerOptions _options;
    private readonly Action<ILoggingBuilder>? _configureLogging;
    private readonly List<ServerServiceDefinition> _services = new();
    private readonly List<Action<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>> _listeners = new();
    private WebApplication? _app;

    public GrpcServer(GrpcServerOptions? options = null, Action<ILoggingBuilder>? configureLogging = null)
    {
        _options = options ?? new GrpcServerOptions();
        _configureLogging = configureLogging;
    }

    public GrpcServer AddService(ServerServiceDefinition service)
    {
        _services.Add(service);
        return this;
    }

    public GrpcServer Listen(IPEndPoint endpoint, X509Certificate2? certificate = null)
    {
        _listeners.Add(kestrel => kestrel.ListenGrpc(endpoint, certificate));
        return this;
    }

    public GrpcServer ListenUnixSocket(string path)
    {
        _listeners.Add(kestrel => kestrel.ListenGrpcUnixSocket(path));
        return this;
    }

    /// <summary>The bound addresses, with the ports the system chose for port 0.</summary>
    public IReadOnlyList<Uri> Addresses { get; private set; } = Array.Empty<Uri>();

    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (_app is not null) throw new InvalidOperationException("The server is already started.");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        _configureLogging?.Invoke(builder.Logging);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.ConfigureForGrpc(_options);
            foreach (var listen in _listeners) listen(kestrel);
        });
        var app = builder.Build();
        var dispatcher = new GrpcServiceDispatcher(_options, app.Services.GetRequiredService<ILogger<GrpcServiceDispatcher>>(), _services);
        app.UseGrpcServices(dispatcher);
        app.Run(context =>
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        });
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        _app = app;
        var addresses = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>();
        Addresses = addresses?.Addresses.Select(a => new Uri(a)).ToArray() ?? Array.Empty<Uri>();
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is null) return;
        using var stopTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(stopTimeout.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _app = null;
    }
}
