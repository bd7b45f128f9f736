using System.Net;
using System.Net.Sockets;
using Mesh.Coordinator.Hosting;
using Orleans.Configuration;

namespace Mesh.Coordinator.Cluster;

/// <summary>
/// How a coordinator's silo joins its cluster. Embedded: the only silo, on loopback and free ports, with
/// localhost clustering. Failure detection is tuned so that a replica that dies is declared dead within a few
/// seconds, which is how long its agents' streams and the grains it held take to move.
/// </summary>
internal static class SiloSetup
{
    public const string ServiceId = "mesh-coordinator";

    public static void Configure(ISiloBuilder silo, CoordinatorOptions options)
    {
        silo.UseLocalhostClustering(options.SiloPort > 0 ? options.SiloPort : FreeLoopbackPort(), options.GatewayPort > 0 ? options.GatewayPort : FreeLoopbackPort(),
            serviceId: ServiceId, clusterId: ServiceId);
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
