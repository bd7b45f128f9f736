using Grpc.Core;

namespace Mesh.Rpc.Client;

/// <summary>Adds fixed headers (credentials, usually) to every call made through an invoker.</summary>
public sealed class HeadersCallInvoker(CallInvoker inner, Metadata headers) : CallInvoker
{
    public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
        inner.BlockingUnaryCall(method, host, With(options), request);

    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
        inner.AsyncUnaryCall(method, host, With(options), request);

    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
        inner.AsyncServerStreamingCall(method, host, With(options), request);

    public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
        inner.AsyncClientStreamingCall(method, host, With(options));

    public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
        inner.AsyncDuplexStreamingCall(method, host, With(options));

    private CallOptions With(CallOptions options)
    {
        var merged = new Metadata();
        foreach (var entry in headers) merged.Add(entry);
        if (options.Headers is { } own)
        {
            foreach (var entry in own) merged.Add(entry);
        }
        return options.WithHeaders(merged);
    }
}

public static class CallInvokerExtensions
{
    public static CallInvoker WithHeaders(this CallInvoker invoker, Metadata headers) => new HeadersCallInvoker(invoker, headers);

    /// <summary>An invoker that sends `authorization: Bearer TOKEN` with every call.</summary>
    public static CallInvoker WithBearerToken(this CallInvoker invoker, string token) =>
        invoker.WithHeaders(new Metadata { { "authorization", "Bearer " + token } });
}
