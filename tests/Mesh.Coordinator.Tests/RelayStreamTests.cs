using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Mesh.Coordinator.Hosting;
using Mesh.Transport;
using Mesh.Traversal.Hosting;
using Mesh.Traversal.Relay;
using Mesh.WireGuard.Keys;
using Microsoft.Extensions.Logging;

namespace Mesh.Coordinator.Tests;

/// <summary>
/// The relay's TCP transport against a real coordinator: the agent's production link and connector, the
/// coordinator's WebSocket endpoint on its gRPC port, h2c and TLS, HTTP/2 and HTTP/1.1, direct and through a
/// CONNECT proxy, and two nodes exchanging forwarded frames.
/// </summary>
public sealed class RelayStreamTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task TwoNodesTalkThroughTheRelayOverH2c()
    {
        await using var rig = await CoordinatorRig.StartAsync();
        var (alice, bob) = await TwoNodesAsync(rig, rig.Connector());
        Assert.Equal("HTTP/2 h2c", alice.Link.Transport);
        await alice.SendAndExpectAsync(bob, "hello over h2c");
        await bob.SendAndExpectAsync(alice, "and back");
        alice.Dispose();
        bob.Dispose();
    }

    [Fact]
    public async Task TwoNodesTalkThroughTheRelayOverTlsWithHttp2()
    {
        using var certificate = TestCertificates.Loopback();
        await using var rig = await CoordinatorRig.StartAsync(tls: certificate);
        Assert.Equal("https", rig.Address.Scheme);
        var (alice, bob) = await TwoNodesAsync(rig, rig.Connector());
        Assert.Equal("HTTP/2 over TLS", alice.Link.Transport);
        await alice.SendAndExpectAsync(bob, "hello over TLS");
        alice.Dispose();
        bob.Dispose();
    }

    [Fact]
    public async Task TheRelayAnswersAnHttp11UpgradeOverTls()
    {
        // What a middlebox that strips h2 from ALPN leaves: HTTP/1.1 only. The WebSocket must still open.
        using var certificate = TestCertificates.Loopback();
        await using var rig = await CoordinatorRig.StartAsync(tls: certificate);
        using var invoker = new HttpMessageInvoker(rig.Connector().CreateHandler(Timeout.InfiniteTimeSpan));
        using var socket = new ClientWebSocket();
        socket.Options.HttpVersion = HttpVersion.Version11;
        socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        socket.Options.CollectHttpResponseDetails = true;
        await socket.ConnectAsync(RelayUrl(rig), invoker, CancellationToken.None);
        Assert.Equal(HttpStatusCode.SwitchingProtocols, socket.HttpStatusCode);

        var key = PrivateKey.Generate();
        var hello = new byte[RelayFrame.HelloSize];
        RelayFrame.WriteHello(hello, key.PublicKey);
        await socket.SendAsync(hello, WebSocketMessageType.Binary, true, CancellationToken.None);
        var answer = new byte[WebSocketFrames.MaxFrame];
        var received = await socket.ReceiveAsync(answer, CancellationToken.None);
        // An unregistered key is refused, which proves the relay itself answered.
        Assert.Equal(RelayFrameType.Refused, RelayFrame.TypeOf(answer.AsSpan(0, received.Count)));
    }

    [Fact]
    public async Task AWebSocketThatNeverAuthenticatesIsClosed()
    {
        await using var rig = await CoordinatorRig.StartAsync();
        using var invoker = new HttpMessageInvoker(rig.Connector().CreateHandler(Timeout.InfiniteTimeSpan));
        using var socket = new ClientWebSocket();
        socket.Options.HttpVersion = HttpVersion.Version20;
        socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        await socket.ConnectAsync(RelayUrl(rig), invoker, CancellationToken.None);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // Silent: no hello, no Auth. The relay closes the stream once its deadline passes.
        var ended = await Record.ExceptionAsync(async () =>
        {
            var buffer = new byte[WebSocketFrames.MaxFrame];
            while ((await socket.ReceiveAsync(buffer, CancellationToken.None)).MessageType != WebSocketMessageType.Close) { }
        });
        Assert.True(ended is null or WebSocketException, ended?.ToString());
        Assert.True(clock.Elapsed >= RelayStreams.AuthTimeout - TimeSpan.FromSeconds(1), "closed at the deadline, not before");
    }

    [Fact]
    public async Task TwoNodesTalkThroughTheRelayViaAConnectProxy()
    {
        using var certificate = TestCertificates.Loopback();
        await using var rig = await CoordinatorRig.StartAsync(tls: certificate);
        await using var proxy = new ConnectProxy();
        var settings = ProxySettings.FromEnvironment(name => name == "https_proxy" ? proxy.Url : null)!;
        var (alice, bob) = await TwoNodesAsync(rig, rig.Connector(settings));
        Assert.Equal($"HTTP/2 over TLS, through proxy 127.0.0.1:{proxy.Port}", alice.Link.Transport);
        await alice.SendAndExpectAsync(bob, "hello through the proxy");
        Assert.Contains($"127.0.0.1:{rig.Address.Port}", proxy.Tunnels);
        alice.Dispose();
        bob.Dispose();
    }

    [Fact]
    public async Task AProxyThatRefusesIsReportedWithItsAnswer()
    {
        await using var rig = await CoordinatorRig.StartAsync();
        await using var proxy = new ConnectProxy(refuse: true);
        var settings = ProxySettings.FromEnvironment(name => name == "HTTPS_PROXY" ? proxy.Url : null)!;
        var log = new CapturingLogger();
        using var connector = new RelayWebSocketConnector(rig.Connector(settings));
        using var link = new RelayStreamLink("coordinator", RelayUrl(rig), ct => connector.ConnectAsync(RelayUrl(rig), ct), _ => { }, log);
        await Eventually.HoldsAsync(() => link.State == RelayStreamState.Failing, Patience, "the link fails");
        Assert.Contains("refused CONNECT", link.LastError);
        Assert.Contains("403", link.LastError);
    }

    [Fact]
    public async Task AFailingRelayIsLoggedAtWarningOncePerChangeWithTheStatusCode()
    {
        await using var rig = await CoordinatorRig.StartAsync();
        var log = new CapturingLogger();
        var wrong = new Uri(RelayUrl(rig), "/no-relay-here");
        using var connector = new RelayWebSocketConnector(rig.Connector());
        using var link = new RelayStreamLink("coordinator", wrong, ct => connector.ConnectAsync(wrong, ct), _ => { }, log);
        // The first attempt, then retries after 1 s and 2 s: three failures, one warning.
        await Eventually.HoldsAsync(() => link.State == RelayStreamState.Failing, Patience, "the link fails");
        await Task.Delay(RelayStreamLink.FirstRetry * 3.5);
        var warnings = log.Entries.Where(e => e.Level == LogLevel.Warning).ToList();
        var warning = Assert.Single(warnings);
        Assert.Contains("404", warning.Message);
        Assert.Contains("404", link.LastError);
    }

    private static Uri RelayUrl(CoordinatorRig rig) =>
        new UriBuilder(new Uri(rig.Address, CoordinatorHost.RelayPath)) { Scheme = rig.Address.Scheme == "https" ? "wss" : "ws" }.Uri;

    private static async Task<(RelayNode Alice, RelayNode Bob)> TwoNodesAsync(CoordinatorRig rig, HttpConnector connector)
    {
        var authKey = await rig.CreateKeyAsync(reusable: true);
        var alice = new TestAgent(rig, "alice");
        var bob = new TestAgent(rig, "bob");
        await alice.RegisterAsync(authKey);
        await bob.RegisterAsync(authKey);
        var relayKey = rig.Host.Identity.Key.PublicKey;
        var a = new RelayNode(alice.Key, relayKey, RelayUrl(rig), connector);
        var b = new RelayNode(bob.Key, relayKey, RelayUrl(rig), connector);
        await a.LogInAsync();
        await b.LogInAsync();
        return (a, b);
    }

    /// <summary>A node's relay session over the production link: the relay client's login, then frames to and from peers.</summary>
    private sealed class RelayNode : IDisposable
    {
        private readonly PrivateKey _key;
        private readonly RelayClient _client;
        private readonly RelayWebSocketConnector _connector;
        private readonly ConcurrentQueue<(byte[] From, string Payload)> _received = new();

        public RelayNode(PrivateKey key, PublicKey relayKey, Uri url, HttpConnector connector)
        {
            _key = key;
            _client = new RelayClient("coordinator", relayKey, key);
            _connector = new RelayWebSocketConnector(connector);
            Link = new RelayStreamLink("coordinator", url, ct => _connector.ConnectAsync(url, ct), OnFrame, new CapturingLogger());
        }

        public RelayStreamLink Link { get; }

        public async Task LogInAsync()
        {
            var output = new byte[RelayFrame.AuthSize];
            var watch = System.Diagnostics.Stopwatch.StartNew();
            while (!_client.IsAlive(watch.Elapsed))
            {
                if (watch.Elapsed > Patience) Assert.Fail($"no Ready from the relay ({Link.State}: {Link.LastError})");
                int length;
                lock (_client) length = _client.Poll(watch.Elapsed, output);
                if (length > 0) Link.Send(output.AsSpan(0, length));
                await Task.Delay(50);
            }
        }

        public async Task SendAndExpectAsync(RelayNode peer, string text)
        {
            var frame = new byte[RelayFrame.ForwardOverhead + 256];
            var length = RelayFrame.WriteForward(frame, RelayFrameType.Send, peer._key.PublicKey.Span, Encoding.UTF8.GetBytes(text));
            Link.Send(frame.AsSpan(0, length));
            await Eventually.HoldsAsync(() => peer._received.Any(r => r.Payload == text && r.From.AsSpan().SequenceEqual(_key.PublicKey.Span)), Patience, $"\"{text}\" arrives");
        }

        private void OnFrame(ReadOnlyMemory<byte> frame)
        {
            var span = frame.Span;
            if (RelayFrame.TypeOf(span) == RelayFrameType.Receive)
            {
                _received.Enqueue((RelayFrame.NodeKey(span).ToArray(), Encoding.UTF8.GetString(RelayFrame.Payload(span))));
                return;
            }
            var reply = new byte[RelayFrame.AuthSize];
            int length;
            lock (_client) length = _client.OnControl(span, TimeSpan.FromMilliseconds(Environment.TickCount64), reply);
            if (length > 0) Link.Send(reply.AsSpan(0, length));
        }

        public void Dispose()
        {
            Link.Dispose();
            _connector.Dispose();
        }
    }

    /// <summary>An HTTP proxy that only tunnels (CONNECT), as networks that block UDP often impose; it notes each tunnel's target.</summary>
    private sealed class ConnectProxy : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private readonly bool _refuse;
        private readonly Task _accepting;

        public ConnectProxy(bool refuse = false)
        {
            _refuse = refuse;
            _listener.Start();
            _accepting = AcceptAsync();
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
        public string Url => $"http://127.0.0.1:{Port}";
        public ConcurrentBag<string> Tunnels { get; } = new();

        private async Task AcceptAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                TcpClient client;
                try
                {
                    client = await _listener.AcceptTcpClientAsync(_stop.Token);
                }
                catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    return;
                }
                _ = ServeAsync(client);
            }
        }

        private async Task ServeAsync(TcpClient client)
        {
            using var _ = client;
            var stream = client.GetStream();
            var request = new StringBuilder();
            var one = new byte[1];
            while (!request.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
            {
                if (await stream.ReadAsync(one) == 0) return;
                request.Append((char)one[0]);
            }
            var target = request.ToString().Split(' ')[1];
            if (_refuse)
            {
                await stream.WriteAsync("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"u8.ToArray());
                return;
            }
            Tunnels.Add(target);
            var colon = target.LastIndexOf(':');
            using var upstream = new TcpClient();
            await upstream.ConnectAsync(target[..colon].Trim('[', ']'), int.Parse(target[(colon + 1)..]));
            await stream.WriteAsync("HTTP/1.1 200 Connection established\r\n\r\n"u8.ToArray());
            var up = upstream.GetStream();
            await Task.WhenAny(stream.CopyToAsync(up, _stop.Token), up.CopyToAsync(stream, _stop.Token));
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _accepting;
        }
    }
}

/// <summary>Keeps what is logged, for tests of what an operator would read.</summary>
internal sealed class CapturingLogger : ILogger
{
    private readonly ConcurrentQueue<(LogLevel Level, string Message)> _entries = new();

    public IReadOnlyCollection<(LogLevel Level, string Message)> Entries => _entries;

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        _entries.Enqueue((logLevel, formatter(state, exception)));
}
