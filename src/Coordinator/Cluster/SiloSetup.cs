using System.Net;
using System.Net.Sockets;
using Mesh.Coordinator.Hosting;
using Orleans.Configuration;

namespace Mesh.Coordinator.Cluster;

/// <summary>
/// How a coordinator's silo joins its cluster. Embedded: the only silo, on loopback and free ports, with
/// localhost clustering. Cluster: Orleans' ADO.NET membership in the replicas' PostgreSQL (its tables are part of
/// <see cref="Store.PostgresStore"/>'s schema), listening on every address and advertising the one the other
/// replicas reach. Failure detection is tuned so that a replica that dies is declared dead within a few
/// seconds, which is how long the grains it held take to move.
/// </summary>
internal static class SiloSetup
{
    public const string ServiceId = "mesh-coordinator";

    public static void Configure(ISiloBuilder silo, CoordinatorOptions options)
    {
        if (options.Postgres is { } postgres)
        {
            var siloPort = options.SiloPort is > 0 and var s ? s : CoordinatorOptions.DefaultSiloPort;
            var gatewayPort = options.GatewayPort is > 0 and var g ? g : CoordinatorOptions.DefaultGatewayPort;
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
                endpoints.GatewayPort = gatewayPort;
                if (options.AdvertiseAddress is { } advertised) endpoints.AdvertisedIPAddress = advertised;
                endpoints.SiloListeningEndpoint = new IPEndPoint(IPAddress.Any, siloPort);
                endpoints.GatewayListeningEndpoint = new IPEndPoint(IPAddress.Any, gatewayPort);
            });
        }
        else
        {
            silo.UseLocalhostClustering(options.SiloPort is > 0 and var s ? s : FreeLoopbackPort(), options.GatewayPort is > 0 and var g ? g : FreeLoopbackPort(),
                serviceId: ServiceId, clusterId: ServiceId);
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

    /// <summary>A port nothing listens on right now; the silo binds it moments later.</summary>
    private static int FreeLoopbackPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
