namespace Mesh.Rpc.Server;

public sealed class GrpcServerOptions
{
    /// <summary>Larger incoming messages fail the call with RESOURCE_EXHAUSTED.</summary>
    public int MaxReceiveMessageSize { get; set; } = Wire.GrpcProtocol.DefaultMaxMessageSize;

    /// <summary>Larger outgoing messages fail the call with RESOURCE_EXHAUSTED; null for no limit.</summary>
    public int? MaxSendMessageSize { get; set; }

    /// <summary>Send an unexpected exception's message to the client instead of a generic one.</summary>
    public bool EnableDetailedErrors { get; set; }

    /// <summary>gzip responses to clients that accept it.</summary>
    public bool CompressResponses { get; set; }

    /// <summary>How often Kestrel pings an idle HTTP/2 connection, and how long it waits for the ack.</summary>
    public TimeSpan KeepAlivePingDelay { get; set; } = TimeSpan.FromSeconds(30);
    public TimeSpan KeepAlivePingTimeout { get; set; } = TimeSpan.FromSeconds(20);
}
