using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Authentication;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Mesh.Traversal.Hosting;

public enum RelayStreamState
{
    Connecting,
    Connected,
    Failing,
}

/// <summary>
/// One relay's TCP transport as an agent holds it: a WebSocket opened on first use and again whenever it
/// breaks (after 1 s, doubling to 30 s), frames queued while it connects and dropped when the queue is full.
/// A failure is logged at warning level once per change (the HTTP status or the error), not once per retry.
/// How the socket is opened is the caller's (HTTP/2 or HTTP/1.1, TLS, a proxy); the NAT lab opens it over its
/// own network and runs this same class.
/// </summary>
/// <remarks>
/// With synchronousSends, queued frames are sent on the thread that queues them rather than a queue reader's: the
/// NAT lab runs everything on one thread, on virtual time, where a thread hop would make two runs differ.
/// </remarks>
public sealed class RelayStreamLink : IDisposable
{
    public static readonly TimeSpan FirstRetry = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan MaxRetry = TimeSpan.FromSeconds(30);
    private const int QueueLimit = 1024;

    private readonly Func<CancellationToken, ValueTask<(WebSocket Socket, string Transport)>> _connect;
    private readonly Action<ReadOnlyMemory<byte>> _onFrame;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Channel<PooledFrame> _outbound;
    private readonly CancellationTokenSource _stopping = new();
    private readonly object _sessionLock = new();
    private CancellationTokenSource? _session;
    private string? _warned;
    private long _dropped;

    /// <param name="connect">Opens the WebSocket, and says what carries it (such as "HTTP/2 over TLS, through proxy:3128").</param>
    public RelayStreamLink(string relayId, Uri url, Func<CancellationToken, ValueTask<(WebSocket Socket, string Transport)>> connect,
        Action<ReadOnlyMemory<byte>> onFrame, ILogger logger, TimeProvider? time = null, bool synchronousSends = false)
    {
        _outbound = WebSocketFrames.CreateQueue(QueueLimit, synchronousSends);
        RelayId = relayId;
        Url = url;
        _connect = connect;
        _onFrame = onFrame;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        Running = RunAsync();
    }

    public string RelayId { get; }
    public Uri Url { get; }
    public RelayStreamState State { get; private set; } = RelayStreamState.Connecting;

    /// <summary>Why the last attempt failed; null while connected.</summary>
    public string? LastError { get; private set; }

    /// <summary>What carries the stream while connected (HTTP version, TLS, proxy).</summary>
    public string? Transport { get; private set; }

    /// <summary>Frames dropped because the queue was full (a relay that is slow or unreachable).</summary>
    public long DroppedFrames => Interlocked.Read(ref _dropped);

    /// <summary>Completes when the link is disposed.</summary>
    public Task Running { get; }

    public void Send(ReadOnlySpan<byte> frame)
    {
        if (!WebSocketFrames.TryEnqueue(_outbound.Writer, frame)) Interlocked.Increment(ref _dropped);
    }

    /// <summary>The network changed: the TCP connection is most likely dead, so drop it and dial again now.</summary>
    public void Reconnect()
    {
        lock (_sessionLock) _session?.Cancel();
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _outbound.Writer.TryComplete();
    }

    private async Task RunAsync()
    {
        var delay = FirstRetry;
        while (!_stopping.IsCancellationRequested)
        {
            string error;
            try
            {
                error = await HoldAsync().ConfigureAwait(false);
                delay = FirstRetry;
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (OperationCanceledException)
            {
                error = "reconnecting after a network change";
                delay = TimeSpan.Zero;
            }
            catch (Exception ex) when (ex is WebSocketException or HttpRequestException or IOException or SocketException or AuthenticationException or InvalidOperationException)
            {
                error = Describe(ex);
            }
            State = RelayStreamState.Failing;
            Transport = null;
            LastError = error;
            if (error != _warned)
            {
                _warned = error;
                _logger.LogWarning("Relay {Relay} over TCP at {Url}: {Error}; retrying in {Delay:0.#} s", RelayId, Url, error, delay.TotalSeconds);
            }
            try
            {
                await Task.Delay(delay, _time, _stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            delay = TimeSpan.FromTicks(Math.Clamp(delay.Ticks * 2, FirstRetry.Ticks, MaxRetry.Ticks));
            State = RelayStreamState.Connecting;
        }
    }

    /// <summary>Connects and carries frames both ways until the stream ends; returns why it ended.</summary>
    private async Task<string> HoldAsync()
    {
        using var session = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        lock (_sessionLock) _session = session;
        try
        {
            var connection = await _connect(session.Token).ConfigureAwait(false);
            using var socket = connection.Socket;
            State = RelayStreamState.Connected;
            LastError = null;
            Transport = connection.Transport;
            _warned = null;
            _logger.LogInformation("Relay {Relay} reached over TCP at {Url} ({Transport})", RelayId, Url, connection.Transport);
            using var receiving = CancellationTokenSource.CreateLinkedTokenSource(session.Token);
            var writing = WebSocketFrames.SendAsync(socket, _outbound.Reader, receiving.Token);
            try
            {
                await WebSocketFrames.ReceiveAsync(socket, _onFrame, receiving.Token).ConfigureAwait(false);
            }
            finally
            {
                receiving.Cancel();
                await writing.ConfigureAwait(false);
            }
            session.Token.ThrowIfCancellationRequested();
            return socket.CloseStatusDescription is { Length: > 0 } reason ? $"the relay closed the stream: {reason}" : "the relay closed the stream";
        }
        finally
        {
            lock (_sessionLock) _session = null;
        }
    }

    /// <summary>The error and what caused it, such as "The server returned status code '404' when status code '200' was expected".</summary>
    private static string Describe(Exception ex)
    {
        var text = ex.Message;
        for (var inner = ex.InnerException; inner is not null; inner = inner.InnerException)
        {
            if (!text.Contains(inner.Message, StringComparison.Ordinal)) text += $" ({inner.Message})";
        }
        return text;
    }
}
