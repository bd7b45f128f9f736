using System.Net.Sockets;
using Grpc.Net.Client;

namespace Mesh.Transport;

/// <summary>gRPC channels (Grpc.Net.Client) to the coordinator over TCP, and to an agent's local API over its unix socket.</summary>
public static class GrpcChannels
{
    /// <summary>gRPC's default limit on a received message.</summary>
    public const int DefaultMaxReceiveMessageSize = 4 * 1024 * 1024;

    /// <param name="keepAlive">HTTP/2 ping interval on open streams, so a dead connection is noticed; infinite for short calls.</param>
    /// <param name="maxReceiveMessageSize">The largest message taken; more than the default where one carries a whole netmap.</param>
    public static GrpcChannel ForAddress(Uri address, HttpConnector connector, TimeSpan keepAlive, int maxReceiveMessageSize = DefaultMaxReceiveMessageSize) =>
        GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = connector.CreateHandler(keepAlive),
            DisposeHttpClient = true,
            MaxReceiveMessageSize = maxReceiveMessageSize,
        });

    /// <summary>A channel to a Kestrel unix-socket endpoint; the URL's host is a placeholder.</summary>
    public static GrpcChannel ForUnixSocket(string path) =>
        GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                UseProxy = false,
                ConnectCallback = async (_, cancellationToken) =>
                {
                    var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    try
                    {
                        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken).ConfigureAwait(false);
                        return new NetworkStream(socket, ownsSocket: true);
                    }
                    catch
                    {
                        socket.Dispose();
                        throw;
                    }
                },
            },
            DisposeHttpClient = true,
        });
}
