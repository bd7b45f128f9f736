using System.Net.Sockets;
using Grpc.Core;
using Mesh.Rpc.Wire;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Mesh.Rpc.Server;

/// <summary>
/// One server call over one HTTP/2 stream: reads request frames, writes response frames under a lock,
/// enforces the deadline (completing the response with DEADLINE_EXCEEDED itself when it passes), and
/// ends the call with the status in trailers, or in the headers when nothing else was sent (Trailers-Only).
/// </summary>
internal sealed class HttpServerCallContext : ServerCallContext, IDisposable
{
    // CancellationTokenSource timers take at most int.MaxValue milliseconds; longer deadlines never fire here.
    private static readonly TimeSpan MaxTimerDelay = TimeSpan.FromMilliseconds(int.MaxValue - 1);
    private const int MaxBufferedBytes = 64 * 1024;

    private readonly HttpContext _http;
    private readonly IMethod _method;
    private readonly CancellationTokenSource _cancellation;
    private readonly CancellationTokenSource? _deadlineTimer;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly MessageReader _reader;
    private readonly MessageWriter _writer;
    private readonly Metadata _responseTrailers = new();
    private Metadata? _requestHeaders;
    private bool _responseComplete;
    private volatile bool _deadlineExceeded;

    public HttpServerCallContext(HttpContext http, IMethod method, GrpcServerOptions options, TimeSpan? timeout, string? requestEncoding, bool compressResponses)
    {
        _http = http;
        _method = method;
        _reader = new MessageReader(http.Request.BodyReader, options.MaxReceiveMessageSize, requestEncoding);
        _writer = new MessageWriter(options.MaxSendMessageSize, compressResponses);
        _cancellation = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
        Deadline = timeout is { } t ? DateTime.UtcNow + t : DateTime.MaxValue;
        if (timeout is { } delay && delay < MaxTimerDelay)
        {
            _deadlineTimer = new CancellationTokenSource(delay);
            _deadlineTimer.Token.UnsafeRegister(static state => ((HttpServerCallContext)state!).OnDeadline(), this);
        }
    }

    public override string Method => _method.FullName;
    public override string Host => _http.Request.Host.Value ?? "";
    public override string Peer => FormatPeer(_http.Connection);
    public override DateTime Deadline { get; }
    public override Metadata RequestHeaders => _requestHeaders ??= ReadRequestHeaders(_http.Request.Headers);
    public override CancellationToken CancellationToken => _cancellation.Token;
    public override Metadata ResponseTrailers => _responseTrailers;
    public override Status Status { get; set; } = Status.DefaultSuccess;
    public override WriteOptions? WriteOptions { get; set; }

    public bool DeadlineExceeded => _deadlineExceeded;

    public HttpContext HttpContext => _http;

    public override async Task WriteResponseHeadersAsync(Metadata responseHeaders)
    {
        await _writeLock.WaitAsync(CancellationToken).ConfigureAwait(false);
        try
        {
            if (_http.Response.HasStarted) throw new InvalidOperationException("Response headers can only be sent once per call.");
            foreach (var entry in responseHeaders)
            {
                _http.Response.Headers.Append(entry.Key, MetadataHeaders.ToHeaderValue(entry));
            }
            await _http.Response.StartAsync(CancellationToken).ConfigureAwait(false);
            await _http.Response.BodyWriter.FlushAsync(CancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public async ValueTask<(bool Read, T Message)> ReadMessageAsync<T>(Func<DeserializationContext, T> deserializer, CancellationToken cancellationToken)
    {
        using var linked = cancellationToken.CanBeCanceled
            ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, CancellationToken)
            : null;
        try
        {
            return await _reader.ReadAsync(deserializer, "request", linked?.Token ?? CancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionAbortedException)
        {
            throw CancellationException(ex);
        }
    }

    public async Task WriteMessageAsync<T>(T message, Marshaller<T> marshaller, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_responseComplete) throw new InvalidOperationException("Can't write the message because the call is complete.");
            if (CancellationToken.IsCancellationRequested) throw CancellationException(null);
            var body = _http.Response.BodyWriter;
            _writer.Write(body, message, marshaller);
            // BufferHint: more messages follow at once; send them together, unless a lot is waiting already.
            var buffered = WriteOptions is { } options && options.Flags.HasFlag(WriteFlags.BufferHint);
            if (buffered && body.CanGetUnflushedBytes && body.UnflushedBytes < MaxBufferedBytes) return;
            var flush = await body.FlushAsync(CancellationToken).ConfigureAwait(false);
            if (flush.IsCanceled || flush.IsCompleted) throw CancellationException(null);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionAbortedException)
        {
            throw CancellationException(ex);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Ends the call with its status; a no-op when the deadline already ended it.</summary>
    public async Task FinishAsync(Status status)
    {
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_responseComplete) return;
            _responseComplete = true;
            if (_http.RequestAborted.IsCancellationRequested) return;
            WriteStatus(status);
            await _http.Response.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ConnectionAbortedException)
        {
            // The client went away; there is nobody to tell.
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public void Dispose()
    {
        _deadlineTimer?.Dispose();
        _cancellation.Dispose();
    }

    private void OnDeadline()
    {
        _deadlineExceeded = true;
        _cancellation.Cancel();
        _ = FinishAsync(new Status(StatusCode.DeadlineExceeded, "Deadline Exceeded"));
    }

    private void WriteStatus(Status status)
    {
        var response = _http.Response;
        var code = ((int)status.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var message = string.IsNullOrEmpty(status.Detail) ? null : StatusMessage.Encode(status.Detail);
        if (!response.HasStarted)
        {
            // Trailers-Only: the status travels in the one HEADERS frame that ends the stream.
            response.Headers[GrpcProtocol.StatusTrailer] = code;
            if (message is not null) response.Headers[GrpcProtocol.MessageTrailer] = message;
            foreach (var entry in _responseTrailers) response.Headers.Append(entry.Key, MetadataHeaders.ToHeaderValue(entry));
            return;
        }
        response.AppendTrailer(GrpcProtocol.StatusTrailer, code);
        if (message is not null) response.AppendTrailer(GrpcProtocol.MessageTrailer, message);
        foreach (var entry in _responseTrailers) response.AppendTrailer(entry.Key, MetadataHeaders.ToHeaderValue(entry));
    }

    private RpcException CancellationException(Exception? inner) => _deadlineExceeded
        ? new RpcException(new Status(StatusCode.DeadlineExceeded, "Deadline Exceeded", inner))
        : new RpcException(new Status(StatusCode.Cancelled, "Call canceled by the client.", inner));

    private static Metadata ReadRequestHeaders(IHeaderDictionary headers)
    {
        var metadata = new Metadata();
        foreach (var (name, values) in headers)
        {
            foreach (var value in values)
            {
                if (value is not null) MetadataHeaders.TryAdd(metadata, name, value);
            }
        }
        return metadata;
    }

    private static string FormatPeer(ConnectionInfo connection) => connection.RemoteIpAddress switch
    {
        null => "unix:",
        { AddressFamily: AddressFamily.InterNetworkV6 } ip => $"ipv6:[{ip}]:{connection.RemotePort}",
        var ip => $"ipv4:{ip}:{connection.RemotePort}",
    };
}
