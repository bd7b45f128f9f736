using Grpc.Core;
using Mesh.NatLab.Sim;
using Mesh.Transport;

namespace Mesh.NatLab.Net;

/// <summary>
/// A gRPC server on virtual time: the production service implementations bind to it (it is their binder), and
/// the production clients call them through <see cref="Invoker"/>. Every message goes through the client's and
/// the service's marshallers and arrives after the latency; calls end with the statuses a real channel reports
/// (UNAVAILABLE while the server is down or when it dies under a call, CANCELLED when the client drops one).
/// Only HTTP/2 itself is not simulated. Everything runs on the scheduler's thread, in its events.
/// </summary>
public sealed class VirtualGrpc(Scheduler scheduler, TimeSpan latency) : ServiceBinderBase
{
    private readonly Dictionary<string, object> _handlers = new();
    private readonly HashSet<ICall> _calls = new();

    public bool Up { get; private set; }

    /// <summary>The number of calls the server is serving now.</summary>
    public int OpenCalls => _calls.Count;

    /// <summary>The process starts and serves what <paramref name="bind"/> binds.</summary>
    public void Start(Action<ServiceBinderBase> bind)
    {
        _handlers.Clear();
        bind(this);
        Up = true;
    }

    /// <summary>The process dies: every call's handler sees its cancellation now, its client a reset a latency later.</summary>
    public void Stop()
    {
        Up = false;
        var calls = new List<ICall>(_calls);
        _calls.Clear();
        foreach (var call in calls) call.Abort(new Status(StatusCode.Unavailable, "The server closed the connection."));
    }

    /// <summary>A client's way in; <paramref name="peer"/> is what the services see as the caller.</summary>
    public CallInvoker Invoker(string peer) => new Client(this, peer);

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler)
    {
        if (handler is not null) Add(method, async call => call.Respond(await handler(await call.SingleRequestAsync().ConfigureAwait(false), call.Context).ConfigureAwait(false)));
    }

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler)
    {
        if (handler is not null) Add(method, async call => call.Respond(await handler(call.Requests, call.Context).ConfigureAwait(false)));
    }

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler)
    {
        if (handler is not null) Add(method, async call => await handler(await call.SingleRequestAsync().ConfigureAwait(false), call.Responses, call.Context).ConfigureAwait(false));
    }

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler)
    {
        if (handler is not null) Add(method, call => handler(call.Requests, call.Responses, call.Context));
    }

    /// <summary>Runs <paramref name="action"/> when a message sent now arrives.</summary>
    private void Later(Action action) => scheduler.After(latency, action);

    private void Add<TRequest, TResponse>(Method<TRequest, TResponse> method, Func<Call<TRequest, TResponse>, Task> serve)
        where TRequest : class where TResponse : class => _handlers[method.FullName] = new Handler<TRequest, TResponse>(method, serve);

    private sealed record Handler<TRequest, TResponse>(Method<TRequest, TResponse> Method, Func<Call<TRequest, TResponse>, Task> Serve)
        where TRequest : class where TResponse : class;

    private interface ICall
    {
        void Abort(Status status);
    }

    /// <summary>
    /// One call, both ends: the client's writer and reader, and the handler's reader, writer and context. The
    /// headers (and with them the call) reach the server a latency after the client starts it.
    /// </summary>
    private sealed class Call<TRequest, TResponse> : ICall where TRequest : class where TResponse : class
    {
        private readonly VirtualGrpc _server;
        private readonly Method<TRequest, TResponse> _clientMethod;
        private readonly CancellationTokenSource _serverCancelled = new();
        private readonly TaskCompletionSource<TResponse> _single = new();
        private Handler<TRequest, TResponse>? _handler;
        private MessageReader<TRequest>? _requests;
        private CancellationTokenRegistration _clientCancellation;
        private Status? _status;
        private bool _served;

        public Call(VirtualGrpc server, Method<TRequest, TResponse> method, CallOptions options, string peer)
        {
            if (options.Deadline is not null) throw new NotSupportedException("The lab's calls carry no deadlines.");
            _server = server;
            _clientMethod = method;
            // A read whose token is cancelled cancels the whole call, as Grpc.Net.Client does.
            ClientReader = new MessageReader<TResponse>(method.ResponseMarshaller, token =>
            {
                Dispose();
                return new RpcException(GetStatus());
            });
            ClientWriter = new RequestWriter(this);
            Context = new LabServerCallContext(method.FullName, peer, options.Headers ?? new Metadata(), _serverCancelled.Token);
            server.Later(Arrive);
            if (options.CancellationToken.CanBeCanceled) _clientCancellation = options.CancellationToken.Register(Dispose);
        }

        public MessageReader<TResponse> ClientReader { get; }
        public IClientStreamWriter<TRequest> ClientWriter { get; }
        public MessageReader<TRequest> Requests => _requests ?? throw new InvalidOperationException("The call has not reached the server.");
        public IServerStreamWriter<TResponse> Responses { get; private set; } = null!;
        public LabServerCallContext Context { get; }
        public Task<TResponse> SingleResponse => _single.Task;
        private bool Finished => _status is not null;

        public async Task<TRequest> SingleRequestAsync()
        {
            if (!await Requests.MoveNext(CancellationToken.None).ConfigureAwait(false)) throw new RpcException(new Status(StatusCode.Internal, "The request had no message."));
            return Requests.Current;
        }

        public void Respond(TResponse response) => Responses.WriteAsync(response);

        public Status GetStatus() => _status ?? throw new InvalidOperationException("The call has not finished.");

        /// <summary>The client drops the call: it sees CANCELLED now, the handler a reset a latency later.</summary>
        public void Dispose()
        {
            _clientCancellation.Dispose();
            if (Finished) return;
            Finish(new Status(StatusCode.Cancelled, "Call canceled by the client."), reset: true);
            _server.Later(EndOnServer);
        }

        public void Abort(Status status)
        {
            EndOnServer();
            _server.Later(() =>
            {
                if (!Finished) Finish(status, reset: true);
            });
        }

        private void Arrive()
        {
            if (Finished) return;
            if (!_server.Up)
            {
                // The connection is refused: the reset takes another latency to come back.
                _server.Later(() =>
                {
                    if (!Finished) Finish(new Status(StatusCode.Unavailable, "Error connecting to subchannel: connection refused."), reset: true);
                });
                return;
            }
            if (!_server._handlers.TryGetValue(_clientMethod.FullName, out var found) || found is not Handler<TRequest, TResponse> handler)
            {
                Reply(new Status(StatusCode.Unimplemented, $"Method {_clientMethod.FullName} is unimplemented."));
                return;
            }
            _handler = handler;
            _requests = new MessageReader<TRequest>(handler.Method.RequestMarshaller, token => new OperationCanceledException(token));
            Responses = new ResponseWriter(this);
            _server._calls.Add(this);
            _ = ServeAsync(handler);
        }

        private async Task ServeAsync(Handler<TRequest, TResponse> handler)
        {
            Status status;
            try
            {
                await handler.Serve(this).ConfigureAwait(false);
                status = Context.Status.StatusCode == StatusCode.OK ? Status.DefaultSuccess : Context.Status;
            }
            catch (RpcException ex)
            {
                status = ex.Status;
            }
            catch (Exception)
            {
                status = new Status(StatusCode.Unknown, "Exception was thrown by handler.");
            }
            if (!_server._calls.Remove(this)) return;
            Reply(status);
        }

        /// <summary>The handler is done: the status follows its responses to the client, which reads them all first.</summary>
        private void Reply(Status status)
        {
            _served = true;
            _server.Later(() =>
            {
                if (!Finished) Finish(status, reset: false);
            });
        }

        private void EndOnServer()
        {
            _server._calls.Remove(this);
            _served = true;
            _requests?.Fail(new OperationCanceledException("The client reset the stream."), dropUnread: true);
            _serverCancelled.Cancel();
        }

        /// <summary>The client learns the status; a reset (the call dropped, the server gone) loses what had not been read.</summary>
        private void Finish(Status status, bool reset)
        {
            _clientCancellation.Dispose();
            _status = status;
            var single = _clientMethod.Type is MethodType.Unary or MethodType.ClientStreaming;
            if (status.StatusCode == StatusCode.OK)
            {
                ClientReader.End();
                if (!single) return;
                if (ClientReader.TryTakeOnly(out var only)) _single.TrySetResult(only);
                else _single.TrySetException(new RpcException(new Status(StatusCode.Internal, "The call ended without a response.")));
            }
            else
            {
                var error = new RpcException(status);
                ClientReader.Fail(error, dropUnread: reset);
                if (single) _single.TrySetException(error);
            }
        }

        private sealed class RequestWriter(Call<TRequest, TResponse> call) : IClientStreamWriter<TRequest>
        {
            private bool _completed;

            public WriteOptions? WriteOptions { get; set; }

            public Task WriteAsync(TRequest message) => WriteAsync(message, CancellationToken.None);

            public Task WriteAsync(TRequest message, CancellationToken cancellationToken)
            {
                if (cancellationToken.IsCancellationRequested) call.Dispose();
                if (call.Finished) return Task.FromException(call._status!.Value.StatusCode == StatusCode.OK
                    ? new InvalidOperationException("Can't write the message because the call is complete.")
                    : new RpcException(call._status.Value));
                if (_completed) return Task.FromException(new InvalidOperationException("Request stream has already been completed."));
                var bytes = ServiceDefinitions.Serialize(call._clientMethod.RequestMarshaller, message);
                call._server.Later(() =>
                {
                    if (!call._served) call._requests?.Deliver(bytes);
                });
                return Task.CompletedTask;
            }

            public Task CompleteAsync()
            {
                _completed = true;
                call._server.Later(() =>
                {
                    if (!call._served) call._requests?.End();
                });
                return Task.CompletedTask;
            }
        }

        private sealed class ResponseWriter(Call<TRequest, TResponse> call) : IServerStreamWriter<TResponse>
        {
            public WriteOptions? WriteOptions { get; set; }

            public Task WriteAsync(TResponse message) => WriteAsync(message, CancellationToken.None);

            public Task WriteAsync(TResponse message, CancellationToken cancellationToken)
            {
                if (call._served) return Task.FromException(new InvalidOperationException("Can't write the message because the request is complete."));
                var bytes = ServiceDefinitions.Serialize(call._handler!.Method.ResponseMarshaller, message);
                call._server.Later(() =>
                {
                    if (!call.Finished) call.ClientReader.Deliver(bytes);
                });
                return Task.CompletedTask;
            }
        }
    }

    /// <summary>
    /// One direction of a call as its reader sees it: messages parsed when read, then an end or an error. A read
    /// waiting for a message resumes in the event that delivers it.
    /// </summary>
    private sealed class MessageReader<T>(Marshaller<T> marshaller, Func<CancellationToken, Exception> cancelled) : IAsyncStreamReader<T>
    {
        private readonly Queue<byte[]> _arrived = new();
        private TaskCompletionSource<bool>? _waiting;
        private CancellationTokenRegistration _cancellation;
        private Exception? _error;
        private bool _ended;

        public T Current { get; private set; } = default!;

        public Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            if (_waiting is not null) return Task.FromException<bool>(new InvalidOperationException("Can't read the next message because the previous read is still in progress."));
            if (_arrived.Count > 0) return Take();
            if (_error is not null) return Task.FromException<bool>(_error);
            if (_ended) return Task.FromResult(false);
            if (cancellationToken.IsCancellationRequested) return Task.FromException<bool>(cancelled(cancellationToken));
            // No RunContinuationsAsynchronously: the reader resumes on the scheduler's thread.
            _waiting = new TaskCompletionSource<bool>();
            if (cancellationToken.CanBeCanceled) _cancellation = cancellationToken.Register(() => Release(w => w.TrySetException(cancelled(cancellationToken))));
            return _waiting.Task;
        }

        public void Deliver(byte[] bytes)
        {
            if (_ended || _error is not null) return;
            _arrived.Enqueue(bytes);
            if (_waiting is null) return;
            var next = Take();
            Release(w =>
            {
                if (next.IsFaulted) w.TrySetException(next.Exception!.InnerExceptions);
                else w.TrySetResult(true);
            });
        }

        public void End()
        {
            _ended = true;
            if (_arrived.Count == 0) Release(w => w.TrySetResult(false));
        }

        /// <summary>The stream ends with an error, read after the messages before it unless <paramref name="dropUnread"/>.</summary>
        public void Fail(Exception error, bool dropUnread)
        {
            if (_ended && _arrived.Count == 0) return;
            _error = error;
            if (dropUnread) _arrived.Clear();
            if (_arrived.Count == 0) Release(w => w.TrySetException(error));
        }

        /// <summary>The one message a unary or client-streaming call answers with.</summary>
        public bool TryTakeOnly(out T message)
        {
            message = default!;
            if (_arrived.Count != 1) return false;
            message = ServiceDefinitions.Deserialize(marshaller, _arrived.Dequeue());
            return true;
        }

        private Task<bool> Take()
        {
            try
            {
                Current = ServiceDefinitions.Deserialize(marshaller, _arrived.Dequeue());
                return Task.FromResult(true);
            }
            catch (Exception ex)
            {
                return Task.FromException<bool>(ex);
            }
        }

        private void Release(Action<TaskCompletionSource<bool>> complete)
        {
            if (_waiting is not { } waiting) return;
            _waiting = null;
            _cancellation.Dispose();
            complete(waiting);
        }
    }

    private sealed class Client(VirtualGrpc server, string peer) : CallInvoker
    {
        public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            throw new NotSupportedException("The lab runs on one thread: a blocking call could never complete.");

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
        {
            var call = Send(method, options, request);
            return new AsyncUnaryCall<TResponse>(call.SingleResponse, Headers, call.GetStatus, Trailers, call.Dispose);
        }

        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
        {
            var call = Send(method, options, request);
            return new AsyncServerStreamingCall<TResponse>(call.ClientReader, Headers, call.GetStatus, Trailers, call.Dispose);
        }

        public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options)
        {
            var call = new Call<TRequest, TResponse>(server, method, options, peer);
            return new AsyncClientStreamingCall<TRequest, TResponse>(call.ClientWriter, call.SingleResponse, Headers, call.GetStatus, Trailers, call.Dispose);
        }

        public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options)
        {
            var call = new Call<TRequest, TResponse>(server, method, options, peer);
            return new AsyncDuplexStreamingCall<TRequest, TResponse>(call.ClientWriter, call.ClientReader, Headers, call.GetStatus, Trailers, call.Dispose);
        }

        private Call<TRequest, TResponse> Send<TRequest, TResponse>(Method<TRequest, TResponse> method, CallOptions options, TRequest request)
            where TRequest : class where TResponse : class
        {
            var call = new Call<TRequest, TResponse>(server, method, options, peer);
            call.ClientWriter.WriteAsync(request);
            call.ClientWriter.CompleteAsync();
            return call;
        }

        private static Task<Metadata> Headers => Task.FromResult(new Metadata());

        private static Metadata Trailers() => new();
    }

    /// <summary>What a handler sees of its call.</summary>
    private sealed class LabServerCallContext(string method, string peer, Metadata headers, CancellationToken cancellationToken) : ServerCallContext
    {
        private readonly Metadata _trailers = new();

        protected override string MethodCore => method;
        protected override string HostCore => "lab";
        protected override string PeerCore => peer;
        protected override DateTime DeadlineCore => DateTime.MaxValue;
        protected override Metadata RequestHeadersCore => headers;
        protected override CancellationToken CancellationTokenCore => cancellationToken;
        protected override Metadata ResponseTrailersCore => _trailers;
        protected override Status StatusCore { get; set; }
        protected override WriteOptions? WriteOptionsCore { get; set; }
        protected override AuthContext AuthContextCore => new(null, new Dictionary<string, List<AuthProperty>>());

        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) =>
            throw new NotSupportedException("The lab's services make no calls of their own.");

        protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
    }
}
