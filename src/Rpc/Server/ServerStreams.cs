using Grpc.Core;

namespace Mesh.Rpc.Server;

internal sealed class ServerRequestStream<TRequest> : IAsyncStreamReader<TRequest>
{
    private readonly HttpServerCallContext _call;
    private readonly Marshaller<TRequest> _marshaller;
    private TRequest? _current;

    public ServerRequestStream(HttpServerCallContext call, Marshaller<TRequest> marshaller)
    {
        _call = call;
        _marshaller = marshaller;
    }

    public TRequest Current => _current ?? throw new InvalidOperationException("No current message: call MoveNext first.");

    public async Task<bool> MoveNext(CancellationToken cancellationToken)
    {
        var (read, message) = await _call.ReadMessageAsync(_marshaller.ContextualDeserializer, cancellationToken).ConfigureAwait(false);
        _current = read ? message : default;
        return read;
    }

    /// <summary>Unary and server-streaming calls carry exactly one request message.</summary>
    public async Task<TRequest> ReadSingleAsync()
    {
        if (!await MoveNext(CancellationToken.None).ConfigureAwait(false))
        {
            throw new RpcException(new Status(StatusCode.Internal, "Incomplete message: the request has no message."));
        }
        var request = Current;
        if (await MoveNext(CancellationToken.None).ConfigureAwait(false))
        {
            throw new RpcException(new Status(StatusCode.Internal, "Additional data after the message received."));
        }
        return request;
    }
}

internal sealed class ServerResponseStream<TResponse> : IServerStreamWriter<TResponse>
{
    private readonly HttpServerCallContext _call;
    private readonly Marshaller<TResponse> _marshaller;

    public ServerResponseStream(HttpServerCallContext call, Marshaller<TResponse> marshaller)
    {
        _call = call;
        _marshaller = marshaller;
    }

    public WriteOptions? WriteOptions
    {
        get => _call.WriteOptions;
        set => _call.WriteOptions = value;
    }

    public Task WriteAsync(TResponse message) => _call.WriteMessageAsync(message, _marshaller, CancellationToken.None);

    public Task WriteAsync(TResponse message, CancellationToken cancellationToken) => _call.WriteMessageAsync(message, _marshaller, cancellationToken);
}
