using System.Net;
using System.Net.NetworkInformation;
using Mesh.Agent.LocalApi;
using Mesh.Control;
using Mesh.Protos.V1;
using Mesh.Transport;
using Mesh.Traversal.Hosting;
using Mesh.Traversal.Node;
using Mesh.Traversal.Paths;
using Mesh.Traversal.Relay;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Host;
using Mesh.WireGuard.Keys;
using Mesh.WireGuard.Tun;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Mesh.Agent.Daemon;

/// <summary>
/// `mesh-agent up`: the TUN interface and its one UDP socket, the mesh node (WireGuard device and path
/// engine), the control client, the local control API on a unix socket, optionally a relay, and the
/// watchers that keep them in step (network changes, peers' routes, timers).
/// </summary>
public sealed class AgentDaemon : IAsyncDisposable
{
    /// <summary>Links, addresses and routes change as netlink events; polling this often catches any that do not come.</summary>
    private static readonly TimeSpan NetworkPoll = TimeSpan.FromSeconds(1);

    /// <summary>How often peers' routes and the relay offer are brought in step, unless a network event comes first.</summary>
    private static readonly TimeSpan WatchInterval = TimeSpan.FromMilliseconds(200);

    private readonly ILogger _logger;
    private readonly InterfaceHost _host;
    private readonly MeshLinks _links;
    private readonly MeshBind _bind;
    private readonly RelayWebSocketConnector _webSockets;
    private readonly RelayHost? _relay;
    private readonly UpnpPortMapper _upnp;
    private readonly AddressResolver _resolver;
    private readonly CancellationTokenSource _stopping = new();
    private readonly HashSet<string> _routes = new();
    private readonly List<Task> _loops = new();
    private WebApplication? _api;

    /// <summary>Wakes the watch loop when a netlink event comes, so a move is acted on at once rather than at its next round.</summary>
    private readonly SemaphoreSlim _networkEvent = new(0, 1);
    private NetlinkRouteEvents? _netlink;
    private readonly NetworkReaction _network;

    /// <summary>
    /// Everything is made in the order it is needed, each piece by its constructor: the sockets and links, the path
    /// engine over them, the bind over both, the interface over the bind, the node over the device and the engine,
    /// and the control client over the node. The engine's requests to the coordinator wait in an outbox the
    /// control client drains, so nothing points back at what it was made before.
    /// </summary>
    private AgentDaemon(AgentOptions options, PrivateKey key, TunDevice tun, HttpConnector connector, ILoggerFactory loggers)
    {
        Options = options;
        _logger = loggers.CreateLogger("mesh-agent");
        var targets = CoordinatorTargets.ForNode(options.Coordinators, key.PublicKey);
        var wireGuardLogger = loggers.CreateLogger("wireguard");
        var failures = new IoFailures(wireGuardLogger);
        var outbox = new ControlOutbox();
        _webSockets = new RelayWebSocketConnector(connector);
        try
        {
            _links = new MeshLinks(new KernelUdpSockets(options.ListenPort), targets, _webSockets.ConnectAsync, loggers.CreateLogger("paths"));
            var engine = new PathEngine(key, SystemClock.Instance, SystemEntropy.Instance, _links, outbox);
            _bind = new MeshBind(_links, engine, failures);
            var filter = new PolicyFilter();
            _host = new InterfaceHost(tun, _bind, wireGuardLogger, new DeviceOptions { Filter = filter }, CryptoPipeline.DefaultWorkers(), failures);
            _host.Device.SetPrivateKey(key);
            _resolver = new AddressResolver(targets);
            Node = new MeshNode(_host.Device, engine, _resolver.Resolve, new RouteGuard(loggers.CreateLogger("routes")), filter);
            var control = new ControlClientOptions { AuthKey = options.AuthKey, Hostname = options.Hostname };
            Control = new ControlClient(control, targets, key, Node, outbox, new GrpcCoordinatorChannels(connector), loggers.CreateLogger("control"));
            _network = new NetworkReaction(engine, Control, _links);
            _upnp = new UpnpPortMapper(engine, _host.ListenPort, loggers.CreateLogger("portmap"));
            if (options.Relay)
            {
                _relay = new RelayHost(new RelayServer(key, Node.IsMember), null, options.RelayPort, SystemClock.Instance, loggers.CreateLogger("relay"));
            }
        }
        catch
        {
            // The interface owns the bind, the bind the sockets and links, and the TUN device goes with the interface.
            _upnp?.Dispose();
            Control?.Dispose();
            if (_host is not null) _host.Dispose();
            else _links?.Dispose();
            _webSockets.Dispose();
            throw;
        }
    }

    public AgentOptions Options { get; }
    public MeshNode Node { get; }
    public ControlClient Control { get; }

    public static async Task<AgentDaemon> StartAsync(AgentOptions options, ILoggerFactory loggers)
    {
        var connector = HttpConnector.FromEnvironment(options.Trust);
        Directory.CreateDirectory(options.StateDir);
        File.SetUnixFileMode(options.StateDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var key = NodeKeyStore.LoadOrCreate(options.StateDir);
        var tun = TunDevice.Create(options.InterfaceName);
        AgentDaemon daemon;
        try
        {
            daemon = new AgentDaemon(options, key, tun, connector, loggers);
        }
        catch
        {
            tun.Dispose();
            throw;
        }
        try
        {
            await daemon.StartAsync(loggers).ConfigureAwait(false);
            return daemon;
        }
        catch
        {
            await daemon.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Completes when the agent stops by itself (its interface was deleted).</summary>
    public Task Stopped => _host.Stopped;

    public ICollection<RelayStreamLink> RelayStreams => _links.RelayStreams;

    public DataPathFeatures DataPath => _host.Features;

    /// <summary>Failures caught on the interface's I/O threads (the bind's sorting included).</summary>
    public long IoFailures => _host.Failures.Total;

    /// <summary>Datagrams dropped before the device: strays the engine and the bind found, and what the links' queue had no room for.</summary>
    public long DroppedDatagrams => Node.Engine.StrayDatagrams + _bind.StrayDatagrams + _links.Dropped;

    /// <summary>The host addresses the last scan left out of this node's candidates, and why.</summary>
    public IReadOnlyList<SkippedAddress> SkippedAddresses { get; private set; } = [];

    public List<Protos.V1.Peer> Peers()
    {
        // Only the peers the node took: a map may name keys no session can be made with.
        lock (Node.View) return Node.View.Peers.Values.Where(p => MeshNode.UsableKey(p.NodeKey) is not null).ToList();
    }

    /// <summary>A peer by name, mesh address (with or without prefix length) or base64 node key.</summary>
    public PublicKey? FindPeer(string reference)
    {
        foreach (var peer in Peers())
        {
            var key = new PublicKey(peer.NodeKey.Span);
            if (peer.Name == reference || key.ToBase64() == reference || peer.Addresses.Any(a => a == reference || a.Split('/')[0] == reference)) return key;
        }
        return null;
    }

    private async Task StartAsync(ILoggerFactory loggers)
    {
        Control.Registered += registration =>
        {
            InterfaceAddresses.Configure(Options.InterfaceName, registration.Addresses, _host.Device.Mtu);
            _logger.LogInformation("{Interface} is up as {Name}: {Addresses}, MTU {Mtu}", Options.InterfaceName, registration.Name, string.Join(", ", registration.Addresses), _host.Device.Mtu);
        };
        _host.Start();
        _netlink = NetlinkRouteEvents.Open(OnNetworkChanged, _logger);
        await StartApiAsync(loggers).ConfigureAwait(false);
        _loops.Add(Task.Factory.StartNew(TickLoop, TaskCreationOptions.LongRunning));
        _loops.Add(WatchLoopAsync());
        _loops.Add(Control.RunAsync(_stopping.Token));
        _loops.Add(_upnp.RunAsync(_stopping.Token));
    }

    private void OnNetworkChanged()
    {
        lock (_networkEvent)
        {
            if (_networkEvent.CurrentCount == 0) _networkEvent.Release();
        }
    }

    /// <summary>The engine's and device's timers, at the engine's pace (often during a hard-NAT search).</summary>
    private void TickLoop()
    {
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                Node.Tick();
            }
            catch (Exception ex)
            {
                _logger.LogError(ex, "Mesh timers failed");
            }
            _stopping.Token.WaitHandle.WaitOne(Node.Engine.TickInterval);
        }
    }

    /// <summary>Keeps the scan's skipped addresses for `status`, and logs each the first time it is left out.</summary>
    private void ReportSkipped(List<SkippedAddress> skipped)
    {
        foreach (var address in skipped)
        {
            if (SkippedAddresses.Contains(address)) continue;
            _logger.LogInformation("Not offering {Address} on {Interface} to peers: it is {Reason}", address.Address, address.Interface, address.Reason);
        }
        SkippedAddresses = skipped;
    }

    /// <summary>Network changes (netlink events, with polling behind them), peers' routes, and the relay offer.</summary>
    private async Task WatchLoopAsync()
    {
        var lastPoll = DateTime.MinValue;
        var changed = false;
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                if (changed || DateTime.UtcNow - lastPoll >= NetworkPoll)
                {
                    lastPoll = DateTime.UtcNow;
                    var scan = InterfaceAddresses.Candidates(Options.InterfaceName);
                    ReportSkipped(scan.Skipped);
                    var gateway = InterfaceAddresses.DefaultGateway(Options.InterfaceName);
                    var outbound = InterfaceAddresses.OutboundSource();
                    var verdict = _network.Apply(new NetworkScan(scan.Candidates, outbound, gateway?.Gateway, gateway?.Source), _host.ListenPort);
                    Node.SetHostNetworks(InterfaceAddresses.LocalNetworks(Options.InterfaceName), Outside(gateway?.Gateway));
                    _upnp.SetNetwork(gateway?.Gateway, gateway?.Source);
                    if (verdict != NetworkVerdict.Same)
                    {
                        _logger.LogInformation(verdict == NetworkVerdict.First ? "Network: {Addresses}, out through {Source}" : "Network changed: {Addresses}, out through {Source}",
                            string.Join(", ", scan.Candidates), outbound?.ToString() ?? "no default route");
                    }
                }
                if (Control.Self is not null) SyncRoutes();
                if (_relay is not null && RelayOffer() is { } offer) Node.Engine.OfferRelay(offer);
            }
            catch (Exception ex) when (ex is InvalidOperationException or NetworkInformationException)
            {
                _logger.LogWarning("Network watch: {Message}", ex.Message);
            }
            try
            {
                changed = await _networkEvent.WaitAsync(WatchInterval, _stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Only what the route guard admitted goes into the routing table: never what a coordinator merely said.</summary>
    private void SyncRoutes() => InterfaceAddresses.SyncRoutes(Options.InterfaceName, Node.AdmittedPrefixes(), _routes);

    /// <summary>What this host must keep reaching outside the mesh: every coordinator replica and the default gateway.</summary>
    private List<(IPAddress Address, string What)> Outside(IPAddress? gateway)
    {
        var addresses = new List<(IPAddress, string)>();
        if (gateway is not null) addresses.Add((gateway, "the default gateway"));
        foreach (var url in Options.Coordinators)
        {
            if (_resolver.Resolve($"{url.Host}:{url.Port}") is { } coordinator) addresses.Add((coordinator.Address, "the coordinator"));
        }
        return addresses;
    }

    /// <summary>Where peers reach this node's relay: as configured, else its public address (STUN's view) or its own.</summary>
    private string? RelayOffer()
    {
        if (Options.RelayAddress is { } configured) return configured;
        var verdict = Node.Engine.LastNetcheck?.Report.Verdict;
        if (verdict?.Reflexive is not { } reflexive) return null;
        return new IPEndPoint(reflexive.Address, _relay!.Port).ToString();
    }

    /// <summary>A relay's TCP transport URL: relative ones ("/relay") live on the coordinator's own address.</summary>
    private async Task StartApiAsync(ILoggerFactory loggers)
    {
        var socket = Options.SocketPath;
        if (File.Exists(socket)) File.Delete(socket);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => GrpcEndpoints.ListenUnixSocket(kestrel, socket));
        builder.Services.AddGrpc();
        var app = builder.Build();
        app.MapGrpcService(ServiceDefinitions.Bind(binder => AgentControl.BindService(binder, new AgentControlService(this))));
        await app.StartAsync().ConfigureAwait(false);
        File.SetUnixFileMode(socket, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _api = app;
    }

    /// <summary>The mapping dies with the agent: the router is told now rather than left holding the port until it expires.</summary>
    private void ReleasePortMapping()
    {
        try
        {
            Node.Engine.ReleasePortMapping();
            Node.Tick();
            _upnp.Release();
        }
        catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException)
        {
            _logger.LogWarning("Deleting the port mapping: {Message}", ex.Message);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _netlink?.Dispose();
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_loops).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        if (_api is not null)
        {
            await _api.StopAsync().ConfigureAwait(false);
            await _api.DisposeAsync().ConfigureAwait(false);
            File.Delete(Options.SocketPath);
        }
        ReleasePortMapping();
        _relay?.Dispose();
        _upnp.Dispose();
        Control.Dispose();
        _host.Dispose();
        _webSockets.Dispose();
        _networkEvent.Dispose();
    }
}
