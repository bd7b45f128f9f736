using System.Net;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using Grpc.AspNetCore.HealthChecks;
using Grpc.Reflection;
using Mesh.Coordinator.Api;
using Mesh.Coordinator.Cluster;
using Mesh.Coordinator.Control;
using Mesh.Coordinator.Health;
using Mesh.Coordinator.Store;
using Mesh.Coordinator.Stun;
using Mesh.Coordinator.Sync;
using Mesh.Protos.V1;
using Mesh.Transport;
using Mesh.Traversal.Hosting;
using Mesh.Traversal.Relay;
using Mesh.WireGuard.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;

namespace Mesh.Coordinator.Hosting;

/// <summary>
/// One coordinator process: an Orleans silo (the node registry, key ring and netmap publisher grains) and, on
/// Kestrel, the gRPC API (with grpc.health.v1 and server reflection), this replica's hub of sync streams, STUN and
/// its relay with the relay's WebSocket. Embedded it is the only silo, over SQLite in its data directory.
/// </summary>
public sealed class CoordinatorHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ICoordinatorStore _store;
    private readonly CancellationTokenSource _stopping;
    private readonly Task _attaching;

    private CoordinatorHost(WebApplication app, Uri grpcAddress, string adminUrl, string? pin, ICoordinatorStore store, CoordinatorIdentity identity, SyncHub hub, StunServer stun, RelayHost? relay,
        CancellationTokenSource stopping, Task attaching)
    {
        _stopping = stopping;
        _app = app;
        GrpcAddress = grpcAddress;
        AdminUrl = adminUrl;
        Pin = pin;
        _store = store;
        Identity = identity;
        Hub = hub;
        Stun = stun;
        Relay = relay;
        _attaching = attaching;
    }

    /// <summary>The bound gRPC address, with the real port when the options asked for port 0.</summary>
    public Uri GrpcAddress { get; }

    /// <summary>Where admin calls go: "unix:PATH" (the default) or the --admin-listen URL, as server.url holds it.</summary>
    public string AdminUrl { get; }

    /// <summary>The self-signed certificate's pin agents pass as --coordinator-pin; null when given a certificate or plaintext.</summary>
    public string? Pin { get; }
    public CoordinatorIdentity Identity { get; }
    public SyncHub Hub { get; }
    public StunServer Stun { get; }

    /// <summary>The embedded relay, null when it is turned off.</summary>
    public RelayHost? Relay { get; }

    public IGrainFactory Grains => _app.Services.GetRequiredService<IGrainFactory>();

    /// <summary>Where the relay's TCP transport (a WebSocket) is served, on the gRPC port.</summary>
    public const string RelayPath = "/relay";

    /// <summary>The services a health check can name; each is serving exactly when the coordinator is.</summary>
    public static readonly IReadOnlyList<string> HealthServices =
        ["", Grpc.Health.V1.Health.Descriptor.FullName, Protos.V1.Coordinator.Descriptor.FullName, Protos.V1.Admin.Descriptor.FullName];

    public static async Task<CoordinatorHost> StartAsync(CoordinatorOptions options, Action<ILoggingBuilder>? configureLogging = null, CancellationToken cancellationToken = default)
    {
        if (options.Validate() is { } problem) throw new ArgumentException(problem, nameof(options));
        Directory.CreateDirectory(options.DataDir);
        File.SetUnixFileMode(options.DataDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        var given = options.TlsCertFile is null ? null : LoadCertificate(options.TlsCertFile, options.TlsKeyFile!);
        ICoordinatorStore store = options.Postgres is { } postgres
            ? await PostgresStore.OpenAsync(postgres)
            : SqliteStore.Open(Path.Combine(options.DataDir, CoordinatorOptions.DatabaseFile));
        try
        {
            var certificate = given ?? (NeedsTls(options) ? await SelfSignedCertificate.LoadOrCreateAsync(store, SelfSignedCertificate.AgentsKey, CertificateNames(options)) : null);
            return await StartAsync(options, certificate, store, configureLogging, cancellationToken);
        }
        catch
        {
            await store.DisposeAsync();
            throw;
        }
    }

    /// <summary>Whether some TCP listener leaves the machine without a certificate given and without --insecure-plaintext.</summary>
    private static bool NeedsTls(CoordinatorOptions options) =>
        !options.PlaintextAt(options.Listen) || options.AdminListen is { } admin && !options.PlaintextAt(admin);

    private static IEnumerable<string> CertificateNames(CoordinatorOptions options)
    {
        if (options.PublicHost is { } host) yield return host;
        foreach (var endpoint in new[] { options.Listen, options.AdminListen })
        {
            if (endpoint is not null && !endpoint.Address.Equals(IPAddress.Any) && !endpoint.Address.Equals(IPAddress.IPv6Any)) yield return endpoint.Address.ToString();
        }
    }

    private static async Task<CoordinatorHost> StartAsync(CoordinatorOptions options, X509Certificate2? certificate, ICoordinatorStore store,
        Action<ILoggingBuilder>? configureLogging, CancellationToken cancellationToken)
    {
        var agentsTls = options.PlaintextAt(options.Listen) ? null : certificate;
        var pin = certificate is not null && options.TlsCertFile is null ? CertificatePin.Of(certificate) : null;
        var identity = await CoordinatorIdentity.LoadAsync(store, options.Mesh);
        if (options.AdminListen is null && File.Exists(options.AdminSocketPath)) File.Delete(options.AdminSocketPath);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        configureLogging?.Invoke(builder.Logging);
        // Orleans tells of every step it takes at Information, and so does the Polly pipeline it places grains
        // through (each attempt); what an operator needs from either is a warning.
        builder.Logging.AddFilter("Orleans", LogLevel.Warning);
        builder.Logging.AddFilter("Polly", LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            GrpcEndpoints.Configure(kestrel);
            GrpcEndpoints.ListenTcp(kestrel, options.Listen, agentsTls);
            if (options.AdminListen is { } admin) GrpcEndpoints.ListenTcp(kestrel, admin, options.PlaintextAt(admin) ? null : certificate, ListenerRoles.MarkAdmin);
            else GrpcEndpoints.ListenUnixSocket(kestrel, options.AdminSocketPath, ListenerRoles.MarkAdmin);
        });
        builder.Services.AddSingleton(store);
        builder.Services.AddSingleton(options.Mesh);
        builder.Services.AddSingleton(identity);
        var clusterCertificate = options.Clustered ? await SelfSignedCertificate.LoadOrCreateAsync(store, SelfSignedCertificate.ClusterKey, []) : null;
        builder.UseOrleans(silo => SiloSetup.Configure(silo, options, clusterCertificate));
        var readiness = new Readiness();
        builder.Services.AddRateLimiter(options.RateLimits.Configure);
        builder.Services.AddGrpc(grpc => grpc.Interceptors.Add<ClusterFailures>());
        builder.Services.AddGrpcHealthChecks(health =>
        {
            foreach (var service in HealthServices) health.Services.Map(service, _ => true);
        }).AddCheck("ready", readiness);
        // Watch streams see a change within a second; Check always asks afresh.
        builder.Services.Configure<HealthCheckPublisherOptions>(publisher =>
        {
            publisher.Delay = TimeSpan.Zero;
            publisher.Period = TimeSpan.FromSeconds(1);
        });
        // The mesh services are bound from definitions (they are made with this replica's hub, and Sync has a
        // serialize-once marshaller), which reflection cannot discover, so it gets every descriptor here.
        IReadOnlyList<Google.Protobuf.Reflection.ServiceDescriptor> described =
        [
            Protos.V1.Coordinator.Descriptor, Protos.V1.Admin.Descriptor, Grpc.Health.V1.Health.Descriptor,
            Grpc.Reflection.V1Alpha.ServerReflection.Descriptor, Grpc.Reflection.V1.ServerReflection.Descriptor,
        ];
        builder.Services.AddSingleton(new ReflectionServiceImpl(described));
        builder.Services.AddSingleton(new ReflectionV1ServiceImpl(described));
        builder.Services.AddGrpcReflection();
        var app = builder.Build();
        var loggers = app.Services.GetRequiredService<ILoggerFactory>();
        var grains = app.Services.GetRequiredService<IGrainFactory>();
        var hubId = app.Services.GetRequiredService<ILocalSiloDetails>().SiloAddress.ToParsableString();

        StunServer stun;
        try
        {
            stun = new StunServer(LocalAddress(options.PublicHost) ?? IPAddress.IPv6Any, options.StunPort, loggers.CreateLogger("stun"));
        }
        catch (System.Net.Sockets.SocketException ex)
        {
            throw new IOException($"cannot listen for STUN on UDP {options.StunPort} and {options.StunPort + 1}: {ex.Message}", ex);
        }
        // The hub first: the relay serves only the members of the map the hub keeps.
        var hub = new SyncHub(hubId, new ClusterMeshPort(grains), TimeProvider.System, loggers.CreateLogger("sync"));
        RelayHost? relay = null;
        if (options.RelayPort >= 0)
        {
            try
            {
                relay = new RelayHost(new RelayServer(identity.Key, hub.IsMember), LocalAddress(options.PublicHost), options.RelayPort, SystemClock.Instance, loggers.CreateLogger("relay"));
            }
            catch (System.Net.Sockets.SocketException ex)
            {
                stun.Dispose();
                throw new IOException($"cannot listen for the relay on UDP {options.RelayPort}: {ex.Message}", ex);
            }
        }
        var stunPort = stun.Ports[0];
        var stunHost = options.PublicHost ?? (options.Listen.Address.Equals(IPAddress.Any) || options.Listen.Address.Equals(IPAddress.IPv6Any) ? "*" : options.Listen.Address.ToString());
        IReadOnlyList<string> publicStun = [$"{stunHost}:{stunPort}", $"{stunHost}:{stun.Ports[1]}"];

        Uri? agentsUrl = null;
        app.Use(ListenerRoles.GateAsync);
        app.UseRateLimiter();
        app.MapGrpcService(new CoordinatorService(new GrainRegistrar(grains), new Challenges(identity, options.Mesh.ChallengeLifetime, TimeProvider.System), hub, stunPort, options.PublicHost, TimeProvider.System).Bind());
        app.MapGrpcService(ServiceDefinitions.Bind(binder => Protos.V1.Admin.BindService(binder,
            new AdminService(grains, store, DateTimeOffset.UtcNow, () => new Announcement(publicStun, AgentsUrl(options, agentsUrl!), pin), TimeProvider.System, loggers.CreateLogger("admin")))));
        app.MapGrpcHealthChecksService();
        app.MapGrpcReflectionService();
        if (relay is not null)
        {
            // Endpoint routing takes any method: an RFC 8441 WebSocket over HTTP/2 arrives as CONNECT, over HTTP/1.1 as GET.
            app.UseWebSockets();
            app.Map(RelayPath, async context =>
            {
                if (!context.WebSockets.IsWebSocketRequest)
                {
                    context.Response.StatusCode = StatusCodes.Status400BadRequest;
                    return;
                }
                using var socket = await context.WebSockets.AcceptWebSocketAsync();
                await relay.ServeStreamAsync(socket, context.RequestAborted);
            });
        }

        app.Lifetime.ApplicationStopping.Register(readiness.Stopping);
        var stopping = new CancellationTokenSource();
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            var bound = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
            var announced = relay is null ? null : AnnouncedRelay(options, identity, relay.Port, bound.Port, agentsTls is not null, app.Services.GetRequiredService<ILocalSiloDetails>().SiloAddress.Endpoint.Address);
            await hub.StartAsync(announced).ConfigureAwait(false);
            var adminKey = (await grains.GetGrain<IKeyRingGrain>(0).BootstrapApiKey()).OrThrow();
            if (adminKey is not null) WritePrivateFile(Path.Combine(options.DataDir, CoordinatorOptions.AdminKeyFile), adminKey + "\n");
        }
        catch
        {
            relay?.Dispose();
            stun.Dispose();
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        readiness.Ready();

        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        var address = new Uri(addresses.First().Replace("http://", agentsTls is null ? "http://" : "https://", StringComparison.Ordinal));
        agentsUrl = address;
        var adminUrl = options.AdminListen is null
            ? "unix:" + options.AdminSocketPath
            : LocalUrl(new Uri(addresses.Skip(1).First().Replace("http://", options.PlaintextAt(options.AdminListen) ? "http://" : "https://", StringComparison.Ordinal)));
        if (options.AdminListen is null) File.SetUnixFileMode(options.AdminSocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllText(Path.Combine(options.DataDir, CoordinatorOptions.ServerUrlFile), adminUrl + "\n");
        app.Logger.LogInformation("Coordinator serving agents on {Address} ({Transport}), admin on {Admin}, STUN on UDP {Stun1} and {Stun2}, data in {DataDir}",
            address, agentsTls is null ? "h2c" : "TLS", adminUrl, stun.Ports[0], stun.Ports[1], options.DataDir);
        if (pin is not null) app.Logger.LogInformation("TLS with a self-signed certificate, pin {Pin}: agents join with --coordinator-pin {Pin}", pin, pin);
        if (options.InsecurePlaintext && (!IPAddress.IsLoopback(options.Listen.Address) || options.AdminListen is { } plainAdmin && !IPAddress.IsLoopback(plainAdmin.Address)))
        {
            app.Logger.LogWarning("Serving plaintext (--insecure-plaintext) beyond loopback: pre-auth keys, session tokens, admin keys and netmaps cross the network in clear unless a TLS proxy terminates in front of this port");
        }
        return new CoordinatorHost(app, address, adminUrl, agentsTls is null ? null : pin, store, identity, hub, stun, relay, stopping, KeepAttachedAsync(hub, app.Logger, stopping.Token));
    }

    /// <summary>
    /// This replica's relay as the netmap names it. Embedded, it is "coordinator" at "*" (the host each agent reached
    /// the coordinator at) with the WebSocket path relative to that. A replica's relay must be reachable by agents
    /// of every replica, so it gets its own id and absolute addresses: its public address, else the address the
    /// other replicas reach it at.
    /// </summary>
    private static Relay AnnouncedRelay(CoordinatorOptions options, CoordinatorIdentity identity, int udpPort, int grpcPort, bool tls, IPAddress siloAddress)
    {
        var key = ByteString.CopyFrom(identity.Key.PublicKey.Span);
        if (!options.Clustered) return new Relay { Id = "coordinator", UdpAddress = $"{options.PublicHost ?? "*"}:{udpPort}", TcpUrl = RelayPath, NodeKey = key };
        var host = options.PublicHost ?? siloAddress.ToString();
        var urlHost = IPAddress.TryParse(host, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{host}]" : host;
        return new Relay
        {
            Id = $"coordinator-{urlHost}:{udpPort}",
            UdpAddress = $"{urlHost}:{udpPort}",
            TcpUrl = $"{(tls ? "https" : "http")}://{urlHost}:{grpcPort}{RelayPath}",
            NodeKey = key,
        };
    }

    /// <summary>
    /// Attaches the hub again every few seconds, so the publisher knows this replica's streams even after it moved to
    /// another replica; a failure is logged once per change, not once per attempt.
    /// </summary>
    private static async Task KeepAttachedAsync(SyncHub hub, ILogger logger, CancellationToken stopping)
    {
        string? failing = null;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(PublisherGrain.HubAttachInterval, stopping).ConfigureAwait(false);
                await hub.AttachAsync().ConfigureAwait(false);
                if (failing is not null) logger.LogInformation("Attached to the netmap publisher again");
                failing = null;
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception ex)
            {
                if (ex.Message != failing) logger.LogWarning("Cannot attach to the netmap publisher: {Error}", ex.Message);
                failing = ex.Message;
            }
        }
    }

    /// <summary>
    /// The public address when it is one of this host's own: STUN and the relay listen on it alone, so replies leave
    /// from the address agents sent to (NATs and the agents match replies by source). Null (all addresses) otherwise.
    /// </summary>
    private static IPAddress? LocalAddress(string? publicHost)
    {
        if (!IPAddress.TryParse(publicHost, out var address)) return null;
        foreach (var nic in System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces())
        {
            foreach (var unicast in nic.GetIPProperties().UnicastAddresses)
            {
                if (unicast.Address.Equals(address)) return address;
            }
        }
        return null;
    }

    /// <summary>Runs until SIGINT/SIGTERM or until the token is cancelled.</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _attaching.ConfigureAwait(false);
        Hub.CloseAll(new Problem(Failure.Unavailable, "The coordinator is shutting down."));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _app.StopAsync(timeout.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        Relay?.Dispose();
        Stun.Dispose();
        await _store.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>The URL agents join with, as `status` and `keys create` print it: the public address when one is set.</summary>
    private static string AgentsUrl(CoordinatorOptions options, Uri bound)
    {
        if (options.PublicHost is null) return bound.ToString().TrimEnd('/');
        var host = IPAddress.TryParse(options.PublicHost, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{ip}]" : options.PublicHost;
        return new UriBuilder(bound) { Host = host }.Uri.ToString().TrimEnd('/');
    }

    /// <summary>The address the admin CLI on this machine uses: a wildcard listen address becomes loopback.</summary>
    private static string LocalUrl(Uri address)
    {
        var builder = new UriBuilder(address);
        if (builder.Host is "0.0.0.0") builder.Host = "127.0.0.1";
        else if (builder.Host is "[::]" or "::") builder.Host = "[::1]";
        return builder.Uri.ToString().TrimEnd('/');
    }

    private static void WritePrivateFile(string path, string content)
    {
        using (File.Create(path)) { }
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllText(path, content);
    }

    private static X509Certificate2 LoadCertificate(string certFile, string keyFile)
    {
        using var pem = X509Certificate2.CreateFromPemFile(certFile, keyFile);
        // Kestrel needs the key in a form the TLS stack can use on every platform.
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
    }
}
