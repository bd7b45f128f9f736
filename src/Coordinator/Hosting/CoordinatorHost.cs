using System.Net;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Health.V1;
using Mesh.Coordinator.Health;
using Mesh.Rpc.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Mesh.Coordinator.Hosting;

/// <summary>The coordinator process: Kestrel serving the gRPC API, with its data directory.</summary>
public sealed class CoordinatorHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private CoordinatorHost(WebApplication app, Uri grpcAddress, HealthStatusRegistry health)
    {
        _app = app;
        GrpcAddress = grpcAddress;
        Health = health;
    }

    /// <summary>The bound gRPC address, with the real port when the options asked for port 0.</summary>
    public Uri GrpcAddress { get; }
    public HealthStatusRegistry Health { get; }

    public static async Task<CoordinatorHost> StartAsync(CoordinatorOptions options, Action<ILoggingBuilder>? configureLogging = null, CancellationToken cancellationToken = default)
    {
        if (options.Validate() is { } problem) throw new ArgumentException(problem, nameof(options));
        Directory.CreateDirectory(options.DataDir);
        File.SetUnixFileMode(options.DataDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        var certificate = options.TlsCertFile is null ? null : LoadCertificate(options.TlsCertFile, options.TlsKeyFile!);
        var rpcOptions = new GrpcServerOptions();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        configureLogging?.Invoke(builder.Logging);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.ConfigureForGrpc(rpcOptions);
            kestrel.ListenGrpc(options.Listen, certificate);
        });
        var health = new HealthStatusRegistry();
        builder.Services.AddSingleton(health);
        var app = builder.Build();

        var services = new List<ServerServiceDefinition>
        {
            Grpc.Health.V1.Health.BindService(new HealthService(health)),
        };
        var dispatcher = new GrpcServiceDispatcher(rpcOptions, app.Services.GetRequiredService<ILogger<GrpcServiceDispatcher>>(), services);
        app.UseGrpcServices(dispatcher);
        app.Run(context =>
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        });

        app.Lifetime.ApplicationStopping.Register(() => health.SetStatus("", ServingStatus.NotServing));
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        health.SetStatus("", ServingStatus.Serving);
        health.SetStatus(Grpc.Health.V1.Health.Descriptor.FullName, ServingStatus.Serving);

        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var address = new Uri(certificate is null ? bound : bound.Replace("http://", "https://", StringComparison.Ordinal));
        app.Logger.LogInformation("Coordinator serving gRPC on {Address} ({Transport}), data in {DataDir}",
            address, certificate is null ? "h2c" : "TLS", options.DataDir);
        return new CoordinatorHost(app, address, health);
    }

    /// <summary>Runs until SIGINT/SIGTERM or until the token is cancelled.</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(timeout.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    private static X509Certificate2 LoadCertificate(string certFile, string keyFile)
    {
        using var pem = X509Certificate2.CreateFromPemFile(certFile, keyFile);
        // Kestrel needs the key in a form the TLS stack can use on every platform.
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
    }
}
