using System.Net;
using Google.Protobuf;
using Mesh.Protos.V1;
using Mesh.Traversal.Node;
using Mesh.Traversal.Paths;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;
using Mesh.Tests.Shared;
using Peer = Mesh.Protos.V1.Peer;

namespace Mesh.Traversal.Tests;

/// <summary>The production MeshNode applying netmaps: only what changed is touched, and timers may run at the same time.</summary>
public sealed class MeshNodeTests : IDisposable
{
    private readonly PrivateKey _key = PrivateKey.Generate();
    private readonly Device _device;
    private readonly MeshNode _node;
    private ulong _serial;

    public MeshNodeTests()
    {
        _device = new Device(new NoOutput());
        _device.SetPrivateKey(_key);
        _node = new MeshNode(_device, new PathEngine(_key, SystemClock.Instance, SystemEntropy.Instance, new NoOutput(), new NoOutput()), _ => null, new RouteGuard(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance), new PolicyFilter());
    }

    public void Dispose()
    {
        _device.Dispose();
        _key.Dispose();
    }

    [Fact]
    public void ADeltaTouchesOnlyThePeersItNames()
    {
        var peers = Enumerable.Range(1, 50).Select(PeerNumber).ToList();
        _node.Apply(new SyncResponse { Full = new NetMap { Serial = ++_serial, Peers = { peers } } });
        var untouched = _device.FindPeer(Key(peers[1]))!;

        var moved = peers[0].Clone();
        moved.AllowedIps.Clear();
        moved.AllowedIps.Add("100.64.9.9/32");
        _node.Apply(new SyncResponse { Delta = new NetMapDelta { Serial = ++_serial, PeersChanged = { moved }, PeersRemoved = { peers[2].NodeId } } });

        Assert.Equal(49, _device.Peers.Count());
        Assert.Null(_device.FindPeer(Key(peers[2])));
        Assert.Same(_device.FindPeer(Key(peers[0])), _device.AllowedIps.Lookup(IPAddress.Parse("100.64.9.9")));
        Assert.Null(_device.AllowedIps.Lookup(IPAddress.Parse("100.64.0.2")));
        Assert.Same(untouched, _device.FindPeer(Key(peers[1])));
        Assert.Same(untouched, _device.AllowedIps.Lookup(IPAddress.Parse("100.64.0.3")));
        Assert.False(_node.IsMember(Key(peers[2])));
        Assert.True(_node.IsMember(Key(peers[0])));
    }

    [Fact]
    public void TimersAndNetmapChangesRunTogetherAndLeaveTheNodeConsistent()
    {
        var peers = Enumerable.Range(1, 200).Select(PeerNumber).ToDictionary(p => p.NodeId);
        _node.Apply(new SyncResponse { Full = new NetMap { Serial = ++_serial, Peers = { peers.Values } } });
        Exception? timerFailure = null;
        using var stop = new CancellationTokenSource();
        var timers = new Thread(() =>
        {
            try
            {
                while (!stop.IsCancellationRequested) _node.Tick();
            }
            catch (Exception ex)
            {
                timerFailure = ex;
            }
        });
        timers.Start();
        var random = new Random(7);
        var next = 1000;
        for (var i = 0; i < 3000; i++)
        {
            var delta = new NetMapDelta { Serial = ++_serial };
            switch (random.Next(3))
            {
                case 0:
                    var added = PeerNumber(next++);
                    peers[added.NodeId] = added;
                    delta.PeersChanged.Add(added);
                    break;
                case 1 when peers.Count > 1:
                    var gone = peers.Keys.ElementAt(random.Next(peers.Count));
                    peers.Remove(gone);
                    delta.PeersRemoved.Add(gone);
                    break;
                default:
                    var changed = peers.Values.ElementAt(random.Next(peers.Count)).Clone();
                    changed.Endpoints = Endpoints($"203.0.113.{random.Next(1, 250)}:{random.Next(1024, 65535)}");
                    changed.Online = random.Next(2) == 0;
                    peers[changed.NodeId] = changed;
                    delta.PeersChanged.Add(changed);
                    break;
            }
            _node.Apply(new SyncResponse { Delta = delta });
        }
        stop.Cancel();
        timers.Join();

        Assert.Null(timerFailure);
        Assert.Equal(peers.Count, _device.Peers.Count());
        foreach (var peer in peers.Values)
        {
            var device = _device.FindPeer(Key(peer));
            Assert.NotNull(device);
            Assert.Same(device, _device.AllowedIps.Lookup(IPAddress.Parse(peer.AllowedIps[0].Split('/')[0])));
            Assert.True(_node.IsMember(Key(peer)));
        }
    }

    [Fact]
    public void AHostileMapCannotRouteTheHostOffTheMeshAndTheValidPeersStillApply()
    {
        _node.SetHostNetworks([IPNetwork.Parse("192.168.1.0/24")], [(IPAddress.Parse("203.0.113.1"), "the coordinator"), (IPAddress.Parse("192.168.1.1"), "the default gateway")]);
        var good = PeerNumber(1);
        var greedy = PeerNumber(2);
        greedy.AllowedIps.Add("0.0.0.0/0");
        greedy.AllowedIps.Add("192.168.1.0/24");
        greedy.AllowedIps.Add("203.0.113.1/32");
        greedy.AllowedIps.Add("not a prefix");
        greedy.AllowedIps.Add("::/0");
        greedy.AllowedIps.Add("100.96.0.0/11");
        var lowOrder = PeerNumber(3);
        // The point of order 1 (u = 1): X25519 with it is zero for every private key.
        lowOrder.NodeKey = ByteString.CopyFrom([1, .. new byte[31]]);
        var map = new NetMap { Serial = ++_serial, Peers = { good, greedy, lowOrder }, MeshPrefixes = { "100.64.0.0/10", "fd00:1:2::/48" } };
        _node.Apply(new SyncResponse { Full = map });

        Assert.Equal(2, _device.Peers.Count());
        Assert.Equal(1, _node.IgnoredPeers);
        // Inside the mesh prefix, a wider claim is the mesh's own business (policy decides who may make it); it stays off the host's networks.
        Assert.Equal(["100.64.0.2/32", "100.64.0.3/32", "100.96.0.0/11"], _node.AdmittedPrefixes().Order());
        Assert.Null(_device.AllowedIps.Lookup(IPAddress.Parse("8.8.8.8")));
        Assert.Null(_device.AllowedIps.Lookup(IPAddress.Parse("192.168.1.20")));
        Assert.Null(_device.AllowedIps.Lookup(IPAddress.Parse("203.0.113.1")));
        Assert.Same(_device.FindPeer(Key(greedy)), _device.AllowedIps.Lookup(IPAddress.Parse("100.64.0.3")));
        Assert.Equal(5, _node.Routes.Refused);

        // A mesh prefix that would cover this host's own network is no mesh prefix for this host.
        _node.Apply(new SyncResponse { Full = new NetMap { Serial = ++_serial, Peers = { good }, MeshPrefixes = { "192.168.0.0/16" } } });
        Assert.Empty(_node.AdmittedPrefixes());
        Assert.Null(_device.AllowedIps.Lookup(IPAddress.Parse("100.64.0.2")));
    }

    [Fact]
    public void WithoutMeshPrefixesOnlyHostRoutesAreTaken()
    {
        var peer = PeerNumber(1);
        peer.AllowedIps.Add("10.9.0.0/16");
        _node.Apply(new SyncResponse { Full = new NetMap { Serial = ++_serial, Peers = { peer } } });
        Assert.Equal(["100.64.0.2/32"], _node.AdmittedPrefixes());
    }

    /// <summary>
    /// A DNS lookup can take seconds: the netmap's names are resolved with no lock held, so the timer thread and
    /// `status` never wait on one; the relay links read a relay's TCP URL without the view's lock.
    /// </summary>
    [Fact]
    public void NamesAreResolvedOutsideTheViewsLock()
    {
        using var key = PrivateKey.Generate();
        using var device = new Device(new NoOutput());
        device.SetPrivateKey(key);
        var asked = new List<(string Name, bool UnderLock)>();
        MeshNode? node = null;
        node = new MeshNode(device, new PathEngine(key, SystemClock.Instance, SystemEntropy.Instance, new NoOutput(), new NoOutput()), name =>
        {
            asked.Add((name, Monitor.IsEntered(node!.View)));
            return NetEndpoint.Parse("192.0.2.1:3478");
        }, new RouteGuard(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance), new PolicyFilter());
        var map = new NetMap { Serial = 1, StunServers = { "stun.example:3478", "stun.example:3479" } };
        map.Relays.Add(new Protos.V1.Relay { Id = "coordinator", UdpAddress = "relay.example:3480", TcpUrl = "/relay" });
        node.Apply(new SyncResponse { Full = map });
        Assert.Equal(["stun.example:3478", "stun.example:3479", "relay.example:3480"], asked.Select(a => a.Name));
        Assert.DoesNotContain(asked, a => a.UnderLock);
    }

    private static PublicKey Key(Peer peer) => new(peer.NodeKey.Span);

    private static Peer PeerNumber(int i)
    {
        using var key = PrivateKey.Generate();
        var address = $"100.64.{i / 250}.{i % 250 + 1}/32";
        return new Peer
        {
            NodeId = (ulong)i,
            NodeKey = ByteString.CopyFrom(key.PublicKey.Span),
            Name = $"peer{i}",
            Addresses = { address },
            AllowedIps = { address },
            Endpoints = Endpoints($"198.51.100.{i % 250 + 1}:{10000 + i}"),
            Online = true,
        };
    }

    private static Endpoints Endpoints(string address) => new()
    {
        Candidates = { new Candidate { Address = address, Kind = CandidateKind.Stun } },
        NatMapping = NatMapping.EndpointIndependent,
    };
}
