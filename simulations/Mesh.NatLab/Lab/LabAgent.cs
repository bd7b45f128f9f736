using System.Net;
using Mesh.Control;
using Mesh.NatLab.Net;
using Mesh.NatLab.Sim;
using Mesh.Protos.V1;
using Mesh.Traversal.Hosting;
using Mesh.Traversal.Node;
using Mesh.Traversal.Paths;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;
using Mesh.WireGuard.Noise;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.NatLab.Lab;

/// <summary>
/// An agent on a virtual host: the production WireGuard <see cref="Device"/>, <see cref="PathEngine"/>,
/// <see cref="MeshNode"/>, <see cref="ControlClient"/> (gRPC calls to the coordinator's production service over
/// <see cref="VirtualGrpc"/>) and relay links (<see cref="RelayStreamSet"/>, WebSockets over virtual TCP) on
/// virtual time and virtual sockets. Only the edges are the lab's: sockets, calls and streams.
/// </summary>
public sealed class LabAgent : IPacketSink, IPathOutput
{
    public const int MainPort = 41641;
    private const int FirstExtraPort = 50000;

    private readonly Scheduler _scheduler;
    private readonly PrivateKey _key;
    private readonly Dictionary<int, int> _extraPorts = new();
    private readonly CancellationTokenSource _stopping = new();
    private int _nextSocket = 1;
    private readonly LabTimeProvider _time;
    private readonly RelayStreamSet _relayStreams;
    private readonly NetworkReaction _network;
    private bool _stopped;

    public LabAgent(string name, LabHost host, LabCoordinator coordinator, int seed, PathOptions options)
    {
        Name = name;
        Host = host;
        _scheduler = host.Segment.Network.Scheduler;
        var entropy = new SeededEntropy(seed);
        _key = PrivateKey.Generate(entropy);
        var clock = new LabClock(_scheduler);
        _time = new LabTimeProvider(_scheduler);
        Device = new Device(this, clock, entropy);
        Device.SetPrivateKey(_key);
        Engine = new PathEngine(_key, clock, entropy, this, options);
        Node = new MeshNode(Device, Engine, text => NetEndpoint.Parse(text), new RouteGuard(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance));
        var targets = CoordinatorTargets.ForNode([coordinator.Url], _key.PublicKey);
        Control = new ControlClient(new ControlClientOptions
        {
            AuthKey = coordinator.AuthKey,
            Hostname = name,
            Time = _time,
            Jitter = new Random(seed),
            SynchronousSends = true,
        }, targets, _key, Node, coordinator.ChannelsFor(host), NullLogger.Instance);
        _relayStreams = new RelayStreamSet(relayId => RelayStreamSet.WebSocketUrl(Node.RelayTcpUrl(relayId), targets.Current.Url), coordinator.ConnectRelayStreamAsync,
            (relayId, frame) => Engine.OnRelayStreamFrame(relayId, frame.Span), NullLogger.Instance, _time, synchronousSends: true);
        _network = new NetworkReaction(Engine, Control, _relayStreams.Reconnect);
    }

    public string Name { get; }
    public LabHost Host { get; }
    public Device Device { get; }
    public PathEngine Engine { get; }
    public MeshNode Node { get; }
    public ControlClient Control { get; }
    public PublicKey PublicKey => _key.PublicKey;

    /// <summary>When the sync stream first held (as a status poll every tick would see it).</summary>
    public TimeSpan? OnlineAt { get; private set; }
    public bool Connected => Control.Connected;

    /// <summary>Called with every packet the tunnel delivers.</summary>
    public Action<byte[]>? TunnelReceived { get; set; }

    public IPAddress? MeshAddress =>
        Node.View.Self?.Addresses.Select(a => IPNetwork.Parse(a).BaseAddress).FirstOrDefault(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork);

    public void Start()
    {
        Host.Bind(MainPort, OnMainSocket);
        NetworkMoved();
        _ = Control.RunAsync(_stopping.Token);
        _scheduler.Every(TimeSpan.FromMilliseconds(10), () =>
        {
            if (_stopped) return false;
            Node.Tick();
            if (OnlineAt is null && Control.Connected) OnlineAt = _scheduler.Now;
            return true;
        });
    }

    public void Stop()
    {
        _stopped = true;
        _stopping.Cancel();
        Control.Dispose();
        _relayStreams.Dispose();
    }

    /// <summary>`mesh-agent up --relay`: this node also relays for the mesh, on its own address.</summary>
    public void ServeRelay()
    {
        var relay = new Mesh.Traversal.Relay.RelayServer(_key, Node.IsMember, new SeededEntropy(_key.PublicKey.GetHashCode()));
        var output = new RelayOutput(Host);
        Host.Bind(LabCoordinator.RelayPort, d => relay.Receive(d.Payload, d.Source, _scheduler.Now, output));
        Engine.OfferRelay($"{Host.Address}:{LabCoordinator.RelayPort}");
    }

    private sealed class RelayOutput(LabHost host) : Mesh.Traversal.Relay.IRelayOutput
    {
        public void Send(ReadOnlySpan<byte> frame, NetEndpoint to) => host.Send(LabCoordinator.RelayPort, to, frame);
    }

    /// <summary>The host moved to another network: the agent notices (as netlink would tell it) and starts over from its new address.</summary>
    public void NetworkMoved()
    {
        var gateway = Host.Segment.GatewayAddress;
        _network.Apply(new NetworkScan([.. Host.Addresses], Host.Address, gateway, gateway is null ? null : Host.Address), MainPort);
    }

    /// <summary>Sends an IP packet into the tunnel, as the TUN device would.</summary>
    public void SendTunnel(byte[] packet) => Device.SendPacket(packet);

    public PeerPathStatus? PathTo(LabAgent peer) => Engine.StatusOf(peer.PublicKey);

    private void OnMainSocket(Datagram datagram)
    {
        if (MessageLayout.TypeOf(datagram.Payload) != 0) Device.ReceiveDatagram(datagram.Payload, datagram.Source);
        else Engine.OnDatagram(0, datagram.Payload, datagram.Source);
    }

    void IPacketSink.SendDatagram(ReadOnlySpan<byte> datagram, NetEndpoint destination)
    {
        if (!Engine.TrySend(datagram, destination)) Host.Send(MainPort, destination, datagram);
    }

    void IPacketSink.WriteTunnel(ReadOnlySpan<byte> packet)
    {
        // The device holds a peer's lock here: whoever reacts to the packet does so in a later event.
        var copy = packet.ToArray();
        if (TunnelReceived is { } receive) _scheduler.After(TimeSpan.Zero, () => receive(copy));
    }

    public void SendUdp(int socket, ReadOnlySpan<byte> datagram, NetEndpoint to, int ttl = 0)
    {
        var port = socket == 0 ? MainPort : _extraPorts.GetValueOrDefault(socket);
        if (port != 0) Host.Send(port, to, datagram, ttl);
    }

    public void SendRelayStream(string relayId, ReadOnlySpan<byte> frame) => _relayStreams.Send(relayId, frame);

    public void DeliverWireGuard(ReadOnlySpan<byte> datagram, NetEndpoint from) => Device.ReceiveDatagram(datagram, from);

    public int OpenSocket()
    {
        var id = _nextSocket++;
        var port = FirstExtraPort + id;
        if (!Host.Bind(port, d => Engine.OnDatagram(id, d.Payload, d.Source))) return -1;
        _extraPorts[id] = port;
        return id;
    }

    public void CloseSocket(int socket)
    {
        if (_extraPorts.Remove(socket, out var port)) Host.Unbind(port);
    }

    public void PublishEndpoints(Endpoints endpoints) => Control.PublishEndpoints(endpoints);

    public void RequestConnect(PublicKey peer) => Control.RequestConnect(peer);
}
