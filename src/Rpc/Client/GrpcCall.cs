using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Headers;
using Grpc.Core;
using Mesh.Rpc.Wire;

namespace Mesh.Rpc.Client;

/// <summary>
/// One client call over one HTTP/2 request. The first status recorded wins: the server's trailers,
/// a local deadline, a cancellation, or a transport failure mapped to the code the protocol gives it.
/// </summary>
internal sealed class GrpcCall<TRequest, TResponse> : IDisposable
    where TRequest : class where TResponse : class
{
    private static readonly MediaTypeHeaderValue GrpcContentType = new(GrpcProtocol.ContentType);
    private static readonly string UserAgent = "grpc-dotnet-mesh/" + typeof(GrpcCall<,>).Assembly.GetName().Version?.ToString(3);

    private readonly GrpcChannel _channel;
    private readonly Method<TRequest, TResponse> _method;
    private readonly CallOptions _options;
    private readonly CancellationTokenSource _cancellation = new();
    private readonly CancellationTokenRegistration _callerCancellation;
    private readonly CancellationTokenSource? _deadlineTimer;
    private readonly object _statusLock = new();
    private Task<Metadata> _headersTask = null!;
    private HttpResponseMessage? _response;
    private MessageReader? _reader;
    private Status? _status;
    private Metadata? _trailers;
    private int _disposed;

    public GrpcCall(GrpcChannel channel, Method<TRequest, TResponse> method, CallOptions options)
    {
        _channel = channel;
        _method = method;
        _options = options;
        // Released as soon as the call ends, so a long-lived caller token does not collect registrations.
        _callerCancellation = options.CancellationToken.UnsafeRegister(static state => ((GrpcCall<TRequest, TResponse>)state!).Cancel(), this);
        if (options.Deadline is { } deadline && deadline != DateTime.MaxValue)
        {
            var remaining = deadline.ToUniversalTime() - DateTime.UtcNow;
            _deadlineTimer = new CancellationTokenSource(remaining <= TimeSpan.Zero ? TimeSpan.Zero : Min(remaining, TimeSpan.FromMilliseconds(int.MaxValue - 1)));
            _deadlineTimer.Token.UnsafeRegister(static state => ((GrpcCall<TRequest, TResponse>)state!).Cancel(), this);
        }
        ResponseStream = new ResponseStreamReader(this);
    }

    public Task<Metadata> ResponseHeadersAsync => _headersTask;

    public IAsyncStreamReader<TResponse> ResponseStream { get; }

    private CancellationToken Token => _cancellation.Token;

    /// <summary>Unary and server-streaming calls: the one request message goes out with the headers.</summary>
    public void StartWithMessage(TRequest request)
    {
        HttpContent content;
        try
        {
            var frame = new ArrayBufferWriter<byte>();
            new MessageWriter(_channel.Options.MaxSendMessageSize, _channel.Options.CompressRequests).Write(frame, request, _method.RequestMarshaller);
            content = new ReadOnlyMemoryContent(frame.WrittenMemory);
        }
        catch (RpcException ex)
        {
            SetStatus(ex.Status, Metadata.Empty);
            _headersTask = Task.FromException<Metadata>(ex);
            return;
        }
        Start(content);
    }

    /// <summary>Client-streaming and duplex calls: messages go out as the caller writes them.</summary>
    public IClientStreamWriter<TRequest> StartStreaming()
    {
        var requests = new RequestStreamWriter(this);
        Start(new StreamingContent(requests.SendAsync));
        return requests;
    }

    public async Task<TResponse> GetSingleResponseAsync()
    {
        var (read, response) = await ReadMessageAsync(CancellationToken.None).ConfigureAwait(false);
        if (!read)
        {
            throw Fail(new Status(StatusCode.Internal, "Failed to deserialize response message: the response has no message."));
        }
        var (more, _) = await ReadMessageAsync(CancellationToken.None).ConfigureAwait(false);
        if (more) throw Fail(new Status(StatusCode.Internal, "Received more than one response message for a call with a single response."));
        return response;
    }

    public Status GetStatus()
    {
        lock (_statusLock)
        {
            return _status ?? throw new InvalidOperationException("Unable to get the status because the call is not complete.");
        }
    }

    public Metadata GetTrailers()
    {
        lock (_statusLock)
        {
            return _trailers ?? throw new InvalidOperationException("Can't get the call trailers because the call has not completed successfully.");
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        SetStatus(new Status(StatusCode.Cancelled, "gRPC call disposed."), Metadata.Empty);
        Cancel();
    }

    private bool IsFinished
    {
        get
        {
            lock (_statusLock) return _status is not null;
        }
    }

    private void Start(HttpContent content)
    {
        content.Headers.ContentType = GrpcContentType;
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_channel.Address, _method.FullName))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = content,
        };
        var headers = request.Headers;
        headers.TryAddWithoutValidation(GrpcProtocol.TeHeader, "trailers");
        headers.TryAddWithoutValidation("user-agent", UserAgent);
        headers.TryAddWithoutValidation(GrpcProtocol.AcceptEncodingHeader, GrpcProtocol.SupportedEncodings);
        if (_channel.Options.CompressRequests) headers.TryAddWithoutValidation(GrpcProtocol.EncodingHeader, GrpcProtocol.GzipEncoding);
        if (_options.Deadline is { } deadline && deadline != DateTime.MaxValue)
        {
            headers.TryAddWithoutValidation(GrpcProtocol.TimeoutHeader, GrpcTimeout.Format(deadline.ToUniversalTime() - DateTime.UtcNow));
        }
        if (_options.Headers is { } metadata)
        {
            foreach (var entry in metadata) headers.TryAddWithoutValidation(entry.Key, MetadataHeaders.ToHeaderValue(entry));
        }
        _headersTask = ReceiveHeadersAsync(request);
    }

    private async Task<Metadata> ReceiveHeadersAsync(HttpRequestMessage request)
    {
        HttpResponseMessage response;
        try
        {
            if (Token.IsCancellationRequested) throw new OperationCanceledException(Token);
            response = await _channel.Invoker.SendAsync(request, Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            throw Fail(ex, "Error starting gRPC call.");
        }
        finally
        {
            request.Dispose();
        }
        Volatile.Write(ref _response, response);
        if (Token.IsCancellationRequested) response.Dispose();

        var headers = new Metadata();
        foreach (var header in response.Headers.NonValidated)
        {
            foreach (var value in header.Value) MetadataHeaders.TryAdd(headers, header.Key, value);
        }

        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw Fail(new Status(MapHttpStatus(response.StatusCode), $"Bad gRPC response. HTTP status code: {(int)response.StatusCode}"));
        }
        var contentType = response.Content.Headers.ContentType?.MediaType;
        var statusInHeaders = ReadStatus(response.Headers);
        if (statusInHeaders is { } trailersOnly)
        {
            // Trailers-Only: the headers are the trailers and the call is over.
            SetStatus(trailersOnly, headers);
            return headers;
        }
        if (!GrpcProtocol.IsGrpcContentType(contentType))
        {
            throw Fail(new Status(StatusCode.Cancelled, $"Bad gRPC response. Invalid content-type value: {contentType}"));
        }
        return headers;
    }

    internal async ValueTask<(bool Read, TResponse Message)> ReadMessageAsync(CancellationToken cancellationToken)
    {
        await _headersTask.ConfigureAwait(false);
        using var registration = cancellationToken.UnsafeRegister(static state => ((GrpcCall<TRequest, TResponse>)state!).Cancel(), this);
        if (TryGetFinalStatus(out var finished))
        {
            if (finished.StatusCode == StatusCode.OK) return (false, default!);
            throw new RpcException(finished, GetTrailersOrEmpty());
        }

        try
        {
            if (_reader is null)
            {
                var stream = await _response!.Content.ReadAsStreamAsync(Token).ConfigureAwait(false);
                var encoding = _response.Headers.TryGetValues(GrpcProtocol.EncodingHeader, out var values) ? values.FirstOrDefault() : null;
                _reader = new MessageReader(PipeReader.Create(stream), _channel.Options.MaxReceiveMessageSize, encoding);
            }
            var result = await _reader.ReadAsync(_method.ResponseMarshaller.ContextualDeserializer, "response", Token).ConfigureAwait(false);
            if (result.Read) return result;
        }
        catch (RpcException ex)
        {
            throw Fail(ex.Status);
        }
        catch (Exception ex)
        {
            throw Fail(ex, "Error reading next message.");
        }

        var trailers = new Metadata();
        foreach (var header in _response!.TrailingHeaders.NonValidated)
        {
            foreach (var value in header.Value) MetadataHeaders.TryAdd(trailers, header.Key, value);
        }
        var status = ReadStatus(_response.TrailingHeaders) ?? new Status(StatusCode.Internal, "No grpc-status found on response.");
        SetStatus(status, trailers);
        _response.Dispose();
        if (TryGetFinalStatus(out var final) && final.StatusCode != StatusCode.OK) throw new RpcException(final, GetTrailersOrEmpty());
        return (false, default!);
    }

    private bool TryGetFinalStatus(out Status status)
    {
        lock (_statusLock)
        {
            status = _status.GetValueOrDefault();
            return _status is not null;
        }
    }

    private Metadata GetTrailersOrEmpty()
    {
        lock (_statusLock) return _trailers ?? Metadata.Empty;
    }

    private void SetStatus(Status status, Metadata trailers)
    {
        lock (_statusLock)
        {
            if (_status is not null) return;
            _status = status;
            _trailers = trailers;
        }
        _callerCancellation.Dispose();
        _deadlineTimer?.Dispose();
    }

    /// <summary>Stops the HTTP/2 stream: a pending send is cancelled, an open response is disposed (RST_STREAM).</summary>
    private void Cancel()
    {
        try
        {
            _cancellation.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
        Volatile.Read(ref _response)?.Dispose();
    }

    /// <summary>Records a local failure (unless the call already has a status), stops the HTTP request, and returns what to throw.</summary>
    private RpcException Fail(Status status)
    {
        SetStatus(status, Metadata.Empty);
        Cancel();
        TryGetFinalStatus(out var final);
        return new RpcException(final, GetTrailersOrEmpty());
    }

    internal RpcException Fail(Exception ex, string context)
    {
        if (ex is RpcException rpc) return Fail(rpc.Status);
        return Fail(StatusFromException(ex, context));
    }

    private Status StatusFromException(Exception ex, string context)
    {
        if (_deadlineTimer?.IsCancellationRequested == true) return new Status(StatusCode.DeadlineExceeded, "Deadline Exceeded", ex);
        if (_options.CancellationToken.IsCancellationRequested || Token.IsCancellationRequested)
        {
            return new Status(StatusCode.Cancelled, "Call canceled by the client.", ex);
        }
        var protocolError = ex as HttpProtocolException ?? ex.InnerException as HttpProtocolException;
        if (protocolError is not null)
        {
            // HTTP/2 RST_STREAM and GOAWAY codes (RFC 9113 section 7), mapped as PROTOCOL-HTTP2.md says.
            var code = protocolError.ErrorCode switch
            {
                0x7 => StatusCode.Unavailable,        // REFUSED_STREAM
                0x8 => StatusCode.Cancelled,          // CANCEL
                0xb => StatusCode.ResourceExhausted,  // ENHANCE_YOUR_CALM
                0xc => StatusCode.PermissionDenied,   // INADEQUATE_SECURITY
                _ => StatusCode.Internal,
            };
            return new Status(code, $"{context} HTTP/2 stream error 0x{protocolError.ErrorCode:x}: {protocolError.Message}", ex);
        }
        if (ex is HttpRequestException or IOException) return new Status(StatusCode.Unavailable, $"{context} {ex.GetType().Name}: {ex.Message}", ex);
        return new Status(StatusCode.Internal, $"{context} {ex.GetType().Name}: {ex.Message}", ex);
    }

    private static Status? ReadStatus(HttpHeaders headers)
    {
        if (!headers.NonValidated.TryGetValues(GrpcProtocol.StatusTrailer, out var statusValues)) return null;
        var text = statusValues.ToString();
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var code))
        {
            return new Status(StatusCode.Unknown, $"Unexpected grpc-status value \"{text}\".");
        }
        var message = headers.NonValidated.TryGetValues(GrpcProtocol.MessageTrailer, out var messageValues) ? messageValues.ToString() : null;
        return new Status((StatusCode)code, StatusMessage.Decode(message));
    }

    /// <summary>grpc/doc/http-grpc-status-mapping.md.</summary>
    private static StatusCode MapHttpStatus(HttpStatusCode status) => (int)status switch
    {
        400 => StatusCode.Internal,
        401 => StatusCode.Unauthenticated,
        403 => StatusCode.PermissionDenied,
        404 => StatusCode.Unimplemented,
        429 or 502 or 503 or 504 => StatusCode.Unavailable,
        _ => StatusCode.Unknown,
    };

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    private sealed class ResponseStreamReader(GrpcCall<TRequest, TResponse> call) : IAsyncStreamReader<TResponse>
    {
        private TResponse? _current;

        public TResponse Current => _current ?? throw new InvalidOperationException("No current message: call MoveNext first.");

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            var (read, message) = await call.ReadMessageAsync(cancellationToken).ConfigureAwait(false);
            _current = read ? message : default;
            return read;
        }
    }

    /// <summary>Hands the request body stream, once HttpClient opens it, to the caller's writes.</summary>
    private sealed class RequestStreamWriter : IClientStreamWriter<TRequest>
    {
        private readonly GrpcCall<TRequest, TResponse> _call;
        private readonly TaskCompletionSource<Stream> _body = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly MessageWriter _writer;
        private PipeWriter? _pipe;
        private Task _pendingWrite = Task.CompletedTask;
        private bool _completeRequested;

        public RequestStreamWriter(GrpcCall<TRequest, TResponse> call)
        {
            _call = call;
            _writer = new MessageWriter(call._channel.Options.MaxSendMessageSize, call._channel.Options.CompressRequests);
            // A cancelled call must abort the request body (RST_STREAM), not end it cleanly.
            call.Token.UnsafeRegister(static state => ((TaskCompletionSource)state!).TrySetCanceled(), _completed);
        }

        public WriteOptions? WriteOptions { get; set; }

        /// <summary>The HTTP content's body: stays open until CompleteAsync or the end of the call.</summary>
        public async Task SendAsync(Stream body)
        {
            _body.TrySetResult(body);
            await _completed.Task.ConfigureAwait(false);
        }

        public Task WriteAsync(TRequest message) => WriteAsync(message, CancellationToken.None);

        public Task WriteAsync(TRequest message, CancellationToken cancellationToken)
        {
            if (_completeRequested) throw new InvalidOperationException("Request stream has already been completed.");
            if (!_pendingWrite.IsCompleted) throw new InvalidOperationException("Can't write the message because the previous write is in progress.");
            _pendingWrite = WriteCoreAsync(message, cancellationToken);
            return _pendingWrite;
        }

        public async Task CompleteAsync()
        {
            _completeRequested = true;
            try
            {
                await _pendingWrite.ConfigureAwait(false);
            }
            finally
            {
                _completed.TrySetResult();
            }
        }

        private async Task WriteCoreAsync(TRequest message, CancellationToken cancellationToken)
        {
            ThrowIfFinished();
            using var registration = cancellationToken.UnsafeRegister(static state => ((GrpcCall<TRequest, TResponse>)state!).Cancel(), _call);
            try
            {
                var body = await _body.Task.WaitAsync(_call.Token).ConfigureAwait(false);
                _pipe ??= PipeWriter.Create(body, new StreamPipeWriterOptions(leaveOpen: true));
                _writer.Write(_pipe, message, _call._method.RequestMarshaller);
                await _pipe.FlushAsync(_call.Token).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                ThrowIfFinished();
                throw _call.Fail(ex, "Error writing request message.");
            }
        }

        private void ThrowIfFinished()
        {
            if (!_call.TryGetFinalStatus(out var status)) return;
            if (status.StatusCode == StatusCode.OK) throw new InvalidOperationException("Can't write the message because the call is complete.");
            throw new RpcException(status, _call.GetTrailersOrEmpty());
        }
    }

    private sealed class StreamingContent(Func<Stream, Task> send) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => send(stream);

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
