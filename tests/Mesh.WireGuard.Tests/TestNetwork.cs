using System.Net;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;
using Mesh.WireGuard.Noise;
using Mesh.WireGuard.Routing;

namespace Mesh.WireGuard.Tests;

/// <summary>Devices joined by an in-memory network on a manual clock; datagrams move only when pumped.</summary>
internal sealed class TestNetwork
{
    private readonly List<(byte[] Datagram, NetEndpoint From, NetEndpoint To)> _inFlight = new();
    private readonly Dictionary<NetEndpoint, Node> _nodes = new();

    public ManualClock Clock { get; } = new();
    public SeededEntropy Entropy { get; } = new(42);

    /// <summary>Sees (and may change or drop, by returning null) every datagram as it is delivered.</summary>
    public Func<byte[], NetEndpoint, NetEndpoint, byte[]?>? Filter { get; set; }

    public List<(byte[] Datagram, NetEndpoint From, NetEndpoint To)> Delivered { get; } = new();

    public Node AddNode(string endpoint, string meshAddress, DeviceOptions? options = null)
    {
        var node = new Node(this, NetEndpoint.Parse(endpoint), IPAddress.Parse(meshAddress), options);
        _nodes[node.Endpoint] = node;
        return node;
    }

    /// <summary>Makes two nodes peers of each other, each knowing the other's endpoint and mesh address.</summary>
    public static void Connect(Node a, Node b, bool aKnowsB = true, bool bKnowsA = true)
    {
        a.AddPeer(b, aKnowsB);
        b.AddPeer(a, bKnowsA);
    }

    /// <summary>Two connected nodes that have completed a handshake through a first packet from a to b.</summary>
    public (Node A, Node B) EstablishedPair()
    {
        var a = AddNode("192.0.2.1:1", "10.0.0.1");
        var b = AddNode("192.0.2.2:1", "10.0.0.2");
        Connect(a, b);
        a.SendTo(b);
        Pump();
        return (a, b);
    }

    /// <summary>Delivers datagrams until none are left in flight (bounded, so a loop shows as a failure).</summary>
    public int Pump(int maxRounds = 100)
    {
        var delivered = 0;
        for (var round = 0; round < maxRounds && _inFlight.Count > 0; round++)
        {
            var batch = _inFlight.ToArray();
            _inFlight.Clear();
            foreach (var (datagram, from, to) in batch)
            {
                var data = Filter is null ? datagram : Filter(datagram, from, to);
                if (data is null || !_nodes.TryGetValue(to, out var node)) continue;
                Delivered.Add((data, from, to));
                node.Device.ReceiveDatagram(data, node.SourceOverride ?? from);
                delivered++;
            }
        }
        return delivered;
    }

    /// <summary>Moves the clock in steps, ticking every device and delivering what they send.</summary>
    public void Run(TimeSpan duration, TimeSpan? step = null)
    {
        var increment = step ?? TimeSpan.FromMilliseconds(100);
        for (var elapsed = TimeSpan.Zero; elapsed < duration; elapsed += increment)
        {
            Clock.Advance(increment);
            foreach (var node in _nodes.Values) node.Device.Tick();
            Pump();
        }
    }

    public void Drop(Func<byte[], bool> which)
    {
        var previous = Filter;
        Filter = (d, f, t) => which(d) ? null : previous is null ? d : previous(d, f, t);
    }

    internal void Enqueue(byte[] datagram, NetEndpoint from, NetEndpoint to) => _inFlight.Add((datagram, from, to));

    public static MessageType TypeOf(byte[] datagram) => MessageLayout.TypeOf(datagram);

    public sealed class Node : IPacketSink
    {
        private readonly TestNetwork _network;

        public Node(TestNetwork network, NetEndpoint endpoint, IPAddress meshAddress, DeviceOptions? options)
        {
            _network = network;
            Endpoint = endpoint;
            MeshAddress = meshAddress;
            Key = PrivateKey.Generate(network.Entropy);
            Device = new Device(this, network.Clock, network.Entropy, options);
            Device.SetPrivateKey(Key);
        }

        public NetEndpoint Endpoint { get; }
        public IPAddress MeshAddress { get; }
        public PrivateKey Key { get; }
        public Device Device { get; }
        public List<byte[]> Received { get; } = new();
        public List<(byte[] Datagram, NetEndpoint To)> Sent { get; } = new();

        /// <summary>Pretend datagrams to this node come from another address (a NAT rebinding, a roaming peer).</summary>
        public NetEndpoint? SourceOverride { get; set; }

        public Peer PeerOf(Node other) => Device.FindPeer(other.Key.PublicKey)!;

        public void AddPeer(Node other, bool knowsEndpoint)
        {
            var peer = Device.GetOrAddPeer(other.Key.PublicKey);
            if (knowsEndpoint) peer.Endpoint = other.Endpoint;
            Device.SetAllowedIps(peer, [IpPrefix.Parse(other.MeshAddress + "/32")], replace: true);
        }

        public void SendTo(Node other, int payloadSize = 100, byte marker = 0) => Device.SendPacket(Packets.Udp(MeshAddress, other.MeshAddress, payloadSize, marker));

        /// <summary>How many of the next sends and tunnel writes throw, as a failing socket or TUN device would.</summary>
        public int FailingSends;
        public int FailingWrites;

        public void SendDatagram(ReadOnlySpan<byte> datagram, NetEndpoint destination)
        {
            if (Volatile.Read(ref FailingSends) > 0 && Interlocked.Decrement(ref FailingSends) >= 0) throw new IOException("injected send failure");
            var copy = datagram.ToArray();
            Sent.Add((copy, destination));
            _network.Enqueue(copy, Endpoint, destination);
        }

        public void WriteTunnel(ReadOnlySpan<byte> packet)
        {
            if (Volatile.Read(ref FailingWrites) > 0 && Interlocked.Decrement(ref FailingWrites) >= 0) throw new IOException("injected write failure");
            Received.Add(packet.ToArray());
        }

        public int SentOfType(MessageType type) => Sent.Count(s => TypeOf(s.Datagram) == type);

        /// <summary>Where each batch ended: how many datagrams had been sent and packets written by then.</summary>
        public List<(int Sent, int Received)> BatchEnds { get; } = new();

        public void EndBatch() => BatchEnds.Add((Sent.Count, Received.Count));
    }
}

internal static class Packets
{
    /// <summary>A minimal IPv4/UDP packet; the payload is filled with the marker byte.</summary>
    public static byte[] Udp(IPAddress source, IPAddress destination, int payloadSize, byte marker = 0)
    {
        var packet = new byte[28 + payloadSize];
        packet[0] = 0x45;
        packet[2] = (byte)(packet.Length >> 8);
        packet[3] = (byte)packet.Length;
        packet[8] = 64;
        packet[9] = 17;
        source.GetAddressBytes().CopyTo(packet, 12);
        destination.GetAddressBytes().CopyTo(packet, 16);
        packet.AsSpan(28).Fill(marker);
        return packet;
    }
}
