using System.Net;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using Grpc.Core;
using Mesh.Control;
using Mesh.Coordinator.Control;
using Mesh.Coordinator.Hosting;
using Mesh.Protos.V1;
using Grpc.Net.Client;
using Mesh.Transport;
using Mesh.WireGuard.Keys;

namespace Mesh.Coordinator.Tests;

/// <summary>A real coordinator on loopback (gRPC over HTTP/2, STUN on free ports) with its own data directory, and an admin client.</summary>
public sealed class CoordinatorRig : IAsyncDisposable
{
    private readonly List<GrpcChannel> _channels = new();

    private CoordinatorRig(string dataDir) => DataDir = dataDir;

    public string DataDir { get; }
    public CoordinatorHost Host { get; private set; } = null!;
    public Admin.AdminClient Admin { get; private set; } = null!;
    public Uri Address => Host.GrpcAddress;

    /// <summary>
    /// With <paramref name="tls"/>, the coordinator serves TLS with that certificate (the admin client trusts it).
    /// With <paramref name="postgres"/>, it is a replica of a cluster on that database, on free silo ports of
    /// loopback; <paramref name="adminKey"/> is then the key another replica wrote.
    /// </summary>
    public static async Task<CoordinatorRig> StartAsync(MeshOptions? mesh = null, string? dataDir = null, X509Certificate2? tls = null, string? postgres = null, string? adminKey = null)
    {
        var rig = new CoordinatorRig(dataDir ?? Path.Combine(Path.GetTempPath(), $"mesh-coord-{Guid.NewGuid():N}"))
        {
            Certificate = tls,
            Postgres = postgres,
            AdminKey = adminKey,
            SiloPort = postgres is null ? null : Mesh.Tests.Shared.FreePorts.Tcp(),
        };
        await rig.StartHostAsync(mesh);
        return rig;
    }

    public X509Certificate2? Certificate { get; private init; }
    public string? Postgres { get; private init; }
    public string? AdminKey { get; private set; }
    public int? SiloPort { get; private init; }

    /// <summary>A connector that trusts the rig's certificate, if it has one.</summary>
    public HttpConnector Connector(ProxySettings? proxy = null) => new(proxy, Certificate is null ? null : new ServerTrust(Certificate));

    public async Task RestartAsync(MeshOptions? mesh = null)
    {
        await Host.DisposeAsync();
        await StartHostAsync(mesh);
    }

    /// <param name="source">The loopback address to connect from (127.0.0.2 stands for another host), or any.</param>
    public Protos.V1.Coordinator.CoordinatorClient NewClient(string? token = null, IPAddress? source = null)
    {
        var channel = source is null
            ? GrpcChannels.ForAddress(Address, Connector(), Timeout.InfiniteTimeSpan)
            : GrpcChannel.ForAddress(Address, new GrpcChannelOptions { HttpHandler = From(source), DisposeHttpClient = true });
        _channels.Add(channel);
        var invoker = channel.CreateCallInvoker();
        return new Protos.V1.Coordinator.CoordinatorClient(token is null ? invoker : invoker.WithBearerToken(token));
    }

    /// <summary>An admin client on the admin listener (the data directory's unix socket).</summary>
    private static SocketsHttpHandler From(IPAddress source) => new()
    {
        ConnectCallback = async (context, cancellationToken) =>
        {
            var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
            try
            {
                socket.Bind(new IPEndPoint(source, 0));
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };

    public Admin.AdminClient AdminWithKey(string? key)
    {
        var channel = GrpcChannels.ForUnixSocket(Host.AdminUrl["unix:".Length..]);
        _channels.Add(channel);
        var invoker = channel.CreateCallInvoker();
        return new Admin.AdminClient(key is null ? invoker : invoker.WithBearerToken(key));
    }

    public async Task<string> CreateKeyAsync(bool reusable = false, bool ephemeral = false, long expirationSeconds = 0, params string[] tags) =>
        (await Admin.CreatePreAuthKeyAsync(new CreatePreAuthKeyRequest { Reusable = reusable, Ephemeral = ephemeral, ExpirationSeconds = expirationSeconds, Tags = { tags } })).Secret;

    public async Task<TestAgent> JoinAsync(string name, string authKey, Endpoints? endpoints = null)
    {
        var agent = new TestAgent(this, name);
        await agent.RegisterAsync(authKey);
        await agent.ConnectAsync(endpoints ?? TestAgent.Candidates("192.0.2.10:41641"));
        return agent;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var channel in _channels) channel.Dispose();
        await Host.DisposeAsync();
        Directory.Delete(DataDir, recursive: true);
    }

    private async Task StartHostAsync(MeshOptions? mesh)
    {
        string? certFile = null, keyFile = null;
        if (Certificate is not null)
        {
            Directory.CreateDirectory(DataDir);
            certFile = Path.Combine(DataDir, "tls.crt");
            keyFile = Path.Combine(DataDir, "tls.key");
            File.WriteAllText(certFile, Certificate.ExportCertificatePem());
            File.WriteAllText(keyFile, Certificate.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        }
        Host = await CoordinatorHost.StartAsync(new CoordinatorOptions
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            DataDir = DataDir,
            StunPort = 0,
            RelayPort = 0,
            TlsCertFile = certFile,
            TlsKeyFile = keyFile,
            Mesh = mesh ?? new MeshOptions(),
            Postgres = Postgres,
            SiloPort = SiloPort,
            AdvertiseAddress = Postgres is null ? null : IPAddress.Loopback,
        });
        AdminKey ??= File.ReadAllText(Path.Combine(DataDir, CoordinatorOptions.AdminKeyFile)).Trim();
        Admin = AdminWithKey(AdminKey);
    }
}

/// <summary>An agent as the coordinator sees one: a node key, a registration, a sync stream and its netmap.</summary>
public sealed class TestAgent(CoordinatorRig rig, string hostname) : IAsyncDisposable
{
    private readonly object _lock = new();
    private AsyncDuplexStreamingCall<SyncRequest, SyncResponse>? _call;
    private Task? _reader;
    private NetMapView _view = null!;

    public PrivateKey Key { get; private init; } = PrivateKey.Generate();

    /// <summary>The address this agent connects from; null lets the system choose (127.0.0.1).</summary>
    public IPAddress? Source { get; init; }
    public ByteString NodeKey => ByteString.CopyFrom(Key.PublicKey.Span);
    public RegisterResponse Registration { get; private set; } = null!;
    public List<ConnectNotice> ConnectNotices { get; } = new();
    public RpcException? StreamError { get; private set; }
    public bool StreamEnded { get; private set; }

    public static Endpoints Candidates(params string[] addresses) => new()
    {
        Candidates = { addresses.Select(a => new Candidate { Address = a, Kind = CandidateKind.Stun }) },
        NatMapping = NatMapping.EndpointIndependent,
    };

    public async Task<RegisterResponse> RegisterAsync(string authKey)
    {
        Registration = await Mesh.Control.Registration.RegisterAsync(rig.NewClient(source: Source), Key, authKey, hostname);
        return Registration;
    }

    /// <summary>A hello that proves this agent's key over a fresh challenge and its session token, as the agent's own.</summary>
    public Task<SyncHello> HelloAsync(ulong lastSerial = 0, Endpoints? endpoints = null) =>
        Mesh.Control.Registration.HelloAsync(rig.NewClient(source: Source), Key, Registration.SessionToken, lastSerial, endpoints);

    public async Task ConnectAsync(Endpoints endpoints, ulong lastSerial = 0)
    {
        _view ??= new NetMapView(NodeKey);
        StreamEnded = false;
        StreamError = null;
        var hello = await HelloAsync(lastSerial, endpoints);
        _call = rig.NewClient(Registration.SessionToken, Source).Sync();
        await _call.RequestStream.WriteAsync(new SyncRequest { Hello = hello });
        var call = _call;
        var opened = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _reader = Task.Run(async () =>
        {
            try
            {
                while (await call.ResponseStream.MoveNext(CancellationToken.None))
                {
                    opened.TrySetResult();
                    var message = call.ResponseStream.Current;
                    lock (_lock)
                    {
                        if (message.KindCase == SyncResponse.KindOneofCase.Connect) ConnectNotices.Add(message.Connect);
                        else _view.Apply(message);
                    }
                }
            }
            catch (RpcException ex)
            {
                StreamError = ex;
            }
            catch (ObjectDisposedException)
            {
                // DisconnectAsync disposed the call under this read.
            }
            finally
            {
                StreamEnded = true;
                opened.TrySetResult();
            }
        });
        // Connected means the coordinator holds the session (its first message came) or refused it.
        await opened.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    public T Read<T>(Func<NetMapView, T> read)
    {
        lock (_lock) return read(_view);
    }

    public ulong Serial => Read(v => v.Serial);

    /// <summary>The same agent (its key, token and netmap) about to stream with another replica, as after a failover.</summary>
    public TestAgent MovedTo(CoordinatorRig replica) => new(replica, hostname) { Registration = Registration, Key = Key, _view = _view };

    /// <summary>Another stream for the same node, as a restarted agent process would open.</summary>
    /// <summary>Another stream of this node (same key and token), as a restarted agent would open.</summary>
    public TestAgent SecondStream() => new(rig, hostname) { Registration = Registration, Key = Key };

    /// <summary>This node's token in the hands of someone without its key.</summary>
    public TestAgent StolenToken() => new(rig, hostname) { Registration = Registration };

    public Task SendAsync(SyncRequest request) => _call!.RequestStream.WriteAsync(request);

    public Task UpdateEndpointsAsync(Endpoints endpoints) => SendAsync(new SyncRequest { Endpoints = endpoints });

    public async Task DisconnectAsync()
    {
        _call?.Dispose();
        if (_reader is not null) await _reader;
    }

    public async ValueTask DisposeAsync() => await DisconnectAsync();
}

internal static class TestCertificates
{
    /// <summary>A self-signed certificate for 127.0.0.1 and localhost, valid for an hour.</summary>
    public static X509Certificate2 Loopback()
    {
        using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        using var generated = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        return X509CertificateLoader.LoadPkcs12(generated.Export(X509ContentType.Pkcs12), null);
    }
}

internal static class Eventually
{
    /// <summary>Polls until the condition holds; returns how long it took, or fails after the timeout.</summary>
    public static async Task<TimeSpan> HoldsAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (watch.Elapsed > timeout) Assert.Fail($"{what}: not within {timeout.TotalSeconds} s");
            await Task.Delay(10);
        }
        return watch.Elapsed;
    }

    /// <summary>Polls an asynchronous condition (a call that may fail for a while) until it holds, or fails after the timeout.</summary>
    public static async Task<TimeSpan> HoldsAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed > timeout) Assert.Fail($"{what}: not within {timeout.TotalSeconds} s");
            await Task.Delay(100);
        }
        return watch.Elapsed;
    }
}
