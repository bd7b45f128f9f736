using System.Net.Sockets;
using Grpc.Core;

namespace Mesh.Rpc.Client;

/// <summary>
/// A client connection to one gRPC server over HTTP/2: h2c with prior knowledge for http:// addresses,
/// TLS with ALPN h2 for https://, or a unix socket.
/// </summary>
public sealed class GrpcChannel : ChannelBase, IDisposable
{
    private GrpcChannel(Uri address, GrpcChannelOptions options) : base(address.Authority)
    {
        Address = address;
        Options = options;
        Invoker = new HttpMessageInvoker(options.HttpHandler ?? CreateHandler(options), disposeHandler: true);
    }

    public Uri Address { get; }
    internal GrpcChannelOptions Options { get; }
    internal HttpMessageInvoker Invoker { get; }

    public static GrpcChannel ForAddress(string address, GrpcChannelOptions? options = null)
    {
        if (!Uri.TryCreate(address, UriKind.Absolute, out var uri))
        {
            throw new ArgumentException($"\"{address}\" is not an absolute URL such as http://127.0.0.1:8443.", nameof(address));
        }
        return ForAddress(uri, options);
    }

    public static GrpcChannel ForAddress(Uri address, GrpcChannelOptions? options = null)
    {
        if (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps)
        {
            throw new ArgumentException($"Address \"{address}\" must use http:// or https://.", nameof(address));
        }
        return new GrpcChannel(address, options ?? new GrpcChannelOptions());
    }

    /// <summary>A channel to a server listening on a unix socket.</summary>
    public static GrpcChannel ForUnixSocket(string path, GrpcChannelOptions? options = null)
    {
        options ??= new GrpcChannelOptions();
        options.UnixSocketPath = path;
        return new GrpcChannel(new Uri("http://localhost"), options);
    }

    public override CallInvoker CreateCallInvoker() => new HttpCallInvoker(this);

    public void Dispose() => Invoker.Dispose();

    private static SocketsHttpHandler CreateHandler(GrpcChannelOptions options)
    {
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            ConnectTimeout = options.ConnectTimeout,
            KeepAlivePingDelay = options.KeepAlivePingDelay,
            KeepAlivePingTimeout = options.KeepAlivePingTimeout,
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            AutomaticDecompression = System.Net.DecompressionMethods.None,
            UseProxy = false,
        };
        if (options.ServerCertificateValidation is { } validate)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = validate;
        }
        if (options.UnixSocketPath is { } path)
        {
            handler.ConnectCallback = async (_, cancellationToken) =>
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
            };
        }
        return handler;
    }
}
