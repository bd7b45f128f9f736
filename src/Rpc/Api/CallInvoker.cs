namespace Grpc.Core;

/// <summary>Starts calls; generated clients go through one.</summary>
public abstract class CallInvoker
{
    public abstract TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
        where TRequest : class where TResponse : class;

    public abstract AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
        where TRequest : class where TResponse : class;

    public abstract AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
        where TRequest : class where TResponse : class;

    public abstract AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options)
        where TRequest : class where TResponse : class;

    public abstract AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options)
        where TRequest : class where TResponse : class;
}

/// <summary>A connection target that can make call invokers.</summary>
public abstract class ChannelBase
{
    protected ChannelBase(string target) => Target = target;

    public string Target { get; }

    public abstract CallInvoker CreateCallInvoker();
}

/// <summary>Base of generated clients.</summary>
public abstract class ClientBase
{
    protected ClientBase() : this(new UnavailableCallInvoker()) { }

    protected ClientBase(ChannelBase channel) : this(channel.CreateCallInvoker()) { }

    protected ClientBase(CallInvoker callInvoker) : this(new ClientBaseConfiguration(callInvoker)) { }

    protected ClientBase(ClientBaseConfiguration configuration) => Configuration = configuration;

    protected internal ClientBaseConfiguration Configuration { get; }

    protected CallInvoker CallInvoker => Configuration.CallInvoker;

    protected internal class ClientBaseConfiguration
    {
        public ClientBaseConfiguration(CallInvoker callInvoker) => CallInvoker = callInvoker;

        public CallInvoker CallInvoker { get; }
    }

    /// <summary>For test doubles built with the parameterless constructor: every call fails.</summary>
    private sealed class UnavailableCallInvoker : CallInvoker
    {
        private static RpcException NoChannel() => new(new Status(StatusCode.Unimplemented, "This client has no channel."));

        public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) => throw NoChannel();
        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) => throw NoChannel();
        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) => throw NoChannel();
        public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) => throw NoChannel();
        public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) => throw NoChannel();
    }
}

public abstract class ClientBase<T> : ClientBase where T : ClientBase<T>
{
    protected ClientBase() { }

    protected ClientBase(ChannelBase channel) : base(channel) { }

    protected ClientBase(CallInvoker callInvoker) : base(callInvoker) { }

    protected ClientBase(ClientBaseConfiguration configuration) : base(configuration) { }

    protected abstract T NewInstance(ClientBaseConfiguration configuration);
}
