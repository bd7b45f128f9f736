using System.Net.Security;

namespace Mesh.Rpc.Client;

public sealed class GrpcChannelOptions
{
    /// <summary>Larger incoming messages fail the call with RESOURCE_EXHAUSTED.</summary>
    public int MaxReceiveMessageSize { get; set; } = Wire.GrpcProtocol.DefaultMaxMessageSize;

    /// <summary>Larger outgoing messages fail the call with RESOURCE_EXHAUSTED before they are sent; null for no limit.</summary>
    public int? MaxSendMessageSize { get; set; }

    /// <summary>gzip request messages (grpc-encoding: gzip).</summary>
    public bool CompressRequests { get; set; }

    /// <summary>
    /// HTTP/2 PING interval while calls are open, so a dead connection under a long-lived stream is noticed.
    /// Infinite turns pings off (C-core servers refuse pings more often than every 5 minutes without data).
    /// </summary>
    public TimeSpan KeepAlivePingDelay { get; set; } = TimeSpan.FromSeconds(60);
    public TimeSpan KeepAlivePingTimeout { get; set; } = TimeSpan.FromSeconds(20);

    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Connect to this unix socket instead of the address's host and port.</summary>
    public string? UnixSocketPath { get; set; }

    /// <summary>Validates the server certificate for https addresses; null for the system's trust store.</summary>
    public RemoteCertificateValidationCallback? ServerCertificateValidation { get; set; }

    /// <summary>A handler to send requests through instead of the channel's own SocketsHttpHandler.</summary>
    public HttpMessageHandler? HttpHandler { get; set; }
}
