namespace Grpc.Core;

/// <summary>What a server handler knows about its call, and how it sets headers, trailers and status.</summary>
public abstract class ServerCallContext
{
    private Dictionary<object, object>? _userState;

    /// <summary>"/package.Service/Method".</summary>
    public abstract string Method { get; }
    public abstract string Host { get; }

    /// <summary>The caller's address, "ipv4:1.2.3.4:5", "ipv6:[::1]:5" or "unix:path".</summary>
    public abstract string Peer { get; }

    /// <summary>When the call expires (UTC); DateTime.MaxValue without a deadline.</summary>
    public abstract DateTime Deadline { get; }
    public abstract Metadata RequestHeaders { get; }

    /// <summary>Cancelled when the client cancels, the deadline passes or the connection drops.</summary>
    public abstract CancellationToken CancellationToken { get; }
    public abstract Metadata ResponseTrailers { get; }
    public abstract Status Status { get; set; }
    public abstract WriteOptions? WriteOptions { get; set; }

    public IDictionary<object, object> UserState => _userState ??= new Dictionary<object, object>();

    /// <summary>Sends the response headers now; at most once, before the first message.</summary>
    public abstract Task WriteResponseHeadersAsync(Metadata responseHeaders);
}
