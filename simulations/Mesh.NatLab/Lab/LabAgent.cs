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
using Mesh.WireGuard.Conn;
using Mesh.WireGuard.Host;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.NatLab.Lab;

/// <summary>
/// An agent on a virtual host: the production WireGuard <see cref="Device"/>, <see cref="MeshBind"/> (every
/// datagram sorted and every send routed as in the agent), <see cref="MeshLinks"/> (the hard-NAT search's sockets
/// and relay links, WebSockets over virtual TCP), <see cref="PathEngine"/>, <see cref="MeshNode"/>,
/// <see cref="ControlClient"/> (gRPC calls to the coordinator's production service over <see cref="VirtualGrpc"/>)
/// and <see cref="NetworkReaction"/>, on virtual time. The lab's own parts are the virtual world's: its sockets
/// (<see cref="LabUdpSockets"/>), calls and streams, and draining the bind into the device in the event a datagram
/// arrives, where the agent's interface runs receiving threads.
/// </summary>
public sealed class LabAgent : IPacketSink
{
    public const int MainPort = LabUdpSockets.MainPort;

    private readonly Scheduler _scheduler;
    private readonly PrivateKey _key;
    private readonly CancellationTokenSource _stopping = new();
    private readonly LabTimeProvider _time;
    private readonly LabUdpSockets _sockets;
    private readonly MeshLinks _links;
    private readonly MeshBind _bind;
    private readonly NetworkReaction _network;
    private readonly ReceiveBatch[] _received = [new(), new()];
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
        var targets = CoordinatorTargets.ForNode([coordinator.Url], _key.PublicKey);
        var outbox = new ControlOutbox(synchronousSends: true);
        _sockets = new LabUdpSockets(host);
        _links = new MeshLinks(_sockets, targets, coordinator.ConnectRelayStreamAsync, NullLogger.Instance, _time, synchronousSends: true, arrived: () => Drain(1));
        Engine = new PathEngine(_key, clock, entropy, _links, outbox, options);
        _bind = new MeshBind(_links, Engine, new IoFailures(NullLogger.Instance));
        var filter = new PolicyFilter();
        Device = new Device(this, clock, entropy, new DeviceOptions { Filter = filter });
        Device.SetPrivateKey(_key);
        Node = new MeshNode(Device, Engine, text => NetEndpoint.Parse(text), new RouteGuard(NullLogger.Instance), filter);
        Control = new ControlClient(new ControlClientOptions
        {
            AuthKey = coordinator.AuthKey,
            Hostname = name,
            Time = _time,
            Jitter = new Random(seed),
        }, targets, _key, Node, outbox, coordinator.ChannelsFor(host), NullLogger.Instance);
        _network = new NetworkReaction(Engine, Control, _links);
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
        Host.Bind(MainPort, datagram =>
        {
            _sockets.Arrive(datagram);
            Drain(0);
        });
        NetworkMoved();
        _ = Control.RunAsync(_stopping.Token);
        _scheduler.Every(TimeSpan.FromMilliseconds(10), () =>
        {
            if (_stopped) return false;
            Node.Tick();
            Device.Tick();
            if (OnlineAt is null && Control.Connected) OnlineAt = _scheduler.Now;
            return true;
        });
    }

    public void Stop()
    {
        _stopped = true;
        _stopping.Cancel();
        Control.Dispose();
        _links.Dispose();
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

    /// <summary>What the bind's receiver holds goes to the device, as the interface's receiving thread would take it.</summary>
    private void Drain(int receiver)
    {
        var batch = _received[receiver];
        do
        {
            var count = _bind.Receive(receiver, batch, 0);
            if (count < 0) return;
            for (var i = 0; i < count; i++) Device.ReceiveDatagram(batch.Datagram(i), batch.Source(i));
        }
        while ((receiver == 0 ? _sockets.Pending : _links.Queued) > 0);
    }

    void IPacketSink.SendDatagram(ReadOnlySpan<byte> datagram, NetEndpoint destination) => _bind.Send(datagram, destination, null);

    void IPacketSink.WriteTunnel(ReadOnlySpan<byte> packet)
    {
        // The device holds a peer's lock here: whoever reacts to the packet does so in a later event.
        var copy = packet.ToArray();
        if (TunnelReceived is { } receive) _scheduler.After(TimeSpan.Zero, () => receive(copy));
    }
}
