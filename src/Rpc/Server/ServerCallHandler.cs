using Grpc.Core;

namespace Mesh.Rpc.Server;

/// <summary>Runs one method's handler for one call, whatever the method's streaming shape.</summary>
internal interface IServerCallHandler
{
    IMethod Method { get; }

    Task HandleAsync(HttpServerCallContext call);
}

internal sealed class ServerCallHandler<TRequest, TResponse> : IServerCallHandler
    where TRequest : class where TResponse : class
{
    private readonly Method<TRequest, TResponse> _method;
    private readonly Delegate _handler;

    public ServerCallHandler(Method<TRequest, TResponse> method, Delegate handler)
    {
        _method = method;
        _handler = handler;
    }

    public IMethod Method => _method;

    public async Task HandleAsync(HttpServerCallContext call)
    {
        var requests = new ServerRequestStream<TRequest>(call, _method.RequestMarshaller);
        var responses = new ServerResponseStream<TResponse>(call, _method.ResponseMarshaller);
        switch (_handler)
        {
            case UnaryServerMethod<TRequest, TResponse> unary:
            {
                var request = await requests.ReadSingleAsync().ConfigureAwait(false);
                var response = await unary(request, call).ConfigureAwait(false);
                await responses.WriteAsync(response).ConfigureAwait(false);
                break;
            }
            case ClientStreamingServerMethod<TRequest, TResponse> clientStreaming:
            {
                var response = await clientStreaming(requests, call).ConfigureAwait(false);
                await responses.WriteAsync(response).ConfigureAwait(false);
                break;
            }
            case ServerStreamingServerMethod<TRequest, TResponse> serverStreaming:
            {
                var request = await requests.ReadSingleAsync().ConfigureAwait(false);
                await serverStreaming(request, responses, call).ConfigureAwait(false);
                break;
            }
            case DuplexStreamingServerMethod<TRequest, TResponse> duplex:
                await duplex(requests, responses, call).ConfigureAwait(false);
                break;
            default:
                throw new InvalidOperationException($"Unsupported handler type {_handler.GetType()}.");
        }
    }
}
