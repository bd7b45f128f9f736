using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Mesh.Coordinator.Hosting;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Connections.Security;

namespace Mesh.Coordinator.Cluster;

/// <summary>
/// How a coordinator's silo joins its cluster, closed to everyone else. Embedded: the only silo, with localhost
/// clustering and no network at all (no gateway, and a silo listener that accepts nothing: a single silo hands
/// its messages to itself in memory), so no local user can connect an Orleans client and call a grain. Cluster:
/// Orleans' ADO.NET membership in the replicas' PostgreSQL (its tables are part of
/// <see cref="Store.PostgresStore"/>'s schema), the silo listening on the address the other replicas reach, and
/// every silo connection mutual TLS with the cluster's certificate (made once, kept in the store), pinned, so a
/// foreign silo or client is refused at the handshake. No replica opens a gateway: each coordinator process is a
/// silo with its client inside. Failure detection is tuned so that a replica that dies is declared dead within a
/// few seconds, which is how long the grains it held take to move.
/// </summary>
internal static class SiloSetup
{
    public const string ServiceId = "mesh-coordinator";

    /// <summary>The embedded silo's port: part of its address, never bound.</summary>
    private const int EmbeddedSiloPort = 11111;

    public static void Configure(ISiloBuilder silo, CoordinatorOptions options, X509Certificate2? clusterCertificate)
    {
        if (options.Postgres is { } postgres)
        {
            var siloPort = options.SiloPort is > 0 and var s ? s : CoordinatorOptions.DefaultSiloPort;
            silo.UseAdoNetClustering(clustering =>
            {
                clustering.Invariant = "Npgsql";
                clustering.ConnectionString = postgres;
            });
            silo.Configure<ClusterOptions>(cluster =>
            {
                cluster.ClusterId = ServiceId;
                cluster.ServiceId = ServiceId;
            });
            silo.Configure<EndpointOptions>(endpoints =>
            {
                endpoints.SiloPort = siloPort;
                endpoints.GatewayPort = 0;
                if (options.AdvertiseAddress is { } advertised) endpoints.AdvertisedIPAddress = advertised;
            });
            UseClusterTls(silo, clusterCertificate ?? throw new ArgumentNullException(nameof(clusterCertificate)));
        }
        else
        {
            silo.UseLocalhostClustering(EmbeddedSiloPort, 0, serviceId: ServiceId, clusterId: ServiceId);
            WithoutNetwork(silo.Services);
        }
        silo.Configure<ClusterMembershipOptions>(membership =>
        {
            membership.ProbeTimeout = TimeSpan.FromSeconds(1);
            membership.NumMissedProbesLimit = 2;
            membership.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(10);
            membership.TableRefreshTimeout = TimeSpan.FromSeconds(2);
        });
        silo.Configure<SiloMessagingOptions>(messaging => messaging.ResponseTimeout = TimeSpan.FromSeconds(10));
    }

    /// <summary>
    /// Both ends present the cluster's certificate and take only that one (by its SHA-256), whatever the chain or
    /// name: setting the validation callback makes it the only check, which is what lets a self-signed one work.
    /// </summary>
    private static void UseClusterTls(ISiloBuilder silo, X509Certificate2 certificate)
    {
        var pinned = certificate.GetCertHash(HashAlgorithmName.SHA256);
        silo.UseTls(certificate, tls =>
        {
            tls.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
            tls.ClientCertificateMode = RemoteCertificateMode.RequireCertificate;
            tls.RemoteCertificateValidation = (remote, _, _) => CryptographicOperations.FixedTimeEquals(remote.GetCertHash(HashAlgorithmName.SHA256), pinned);
        });
    }

    /// <summary>
    /// Replaces Orleans' socket transport (its keyed listener and connection factories, whose keys are internal and
    /// so are taken from the registrations Orleans made) with one that listens on nothing and connects nowhere.
    /// </summary>
    private static void WithoutNetwork(IServiceCollection services)
    {
        foreach (var registration in services.Where(d => d.IsKeyedService && d.ServiceType == typeof(IConnectionListenerFactory)).ToList())
        {
            services.Remove(registration);
            services.AddKeyedSingleton<IConnectionListenerFactory>(registration.ServiceKey, (_, _) => new NoListeners());
        }
        foreach (var registration in services.Where(d => d.IsKeyedService && d.ServiceType == typeof(IConnectionFactory)).ToList())
        {
            services.Remove(registration);
            services.AddKeyedSingleton<IConnectionFactory>(registration.ServiceKey, (_, _) => new NoConnections());
        }
    }

    private sealed class NoListeners : IConnectionListenerFactory
    {
        public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default) => new(new Listener(endpoint));

        /// <summary>Accepts nothing until unbound, then says it is closed (null), which ends Orleans' accept loop quietly.</summary>
        private sealed class Listener(EndPoint endpoint) : IConnectionListener
        {
            private readonly TaskCompletionSource _unbound = new(TaskCreationOptions.RunContinuationsAsynchronously);

            public EndPoint EndPoint => endpoint;

            public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
            {
                await _unbound.Task.WaitAsync(cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
                return null;
            }

            public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
            {
                _unbound.TrySetResult();
                return default;
            }

            public ValueTask DisposeAsync()
            {
                _unbound.TrySetResult();
                return default;
            }
        }
    }

    private sealed class NoConnections : IConnectionFactory
    {
        public ValueTask<ConnectionContext> ConnectAsync(EndPoint endpoint, CancellationToken cancellationToken = default) =>
            throw new SocketException((int)SocketError.ConnectionRefused);
    }
}
