using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Mesh.Protos.V1;
using Peer = Mesh.Protos.V1.Peer;
using Mesh.Traversal.Node;
using Mesh.Traversal.Paths;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;
using Mesh.Tests.Shared;

// What a netmap costs an agent: the production MeshNode (WireGuard device and path engine, no I/O) applying the
// initial full map, then one-peer deltas, at each mesh size. The reference, measured in the same run, is
// re-applying the whole map, which is what every delta cost before deltas were applied as diffs.
var sizes = (args.Length > 0 ? args[0] : "1000,10000").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
var deltas = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 200;
var lines = new List<string>();
foreach (var n in sizes)
{
    using var key = PrivateKey.Generate();
    var device = new Device(new NoOutput());
    device.SetPrivateKey(key);
    var node = new MeshNode(device, new PathEngine(key, SystemClock.Instance, SystemEntropy.Instance, new NoOutput(), new NoOutput()), _ => null, new RouteGuard(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance), new PolicyFilter());
    var peers = Enumerable.Range(0, n).Select(PeerNumber).ToList();
    ulong serial = 1;

    var full = new SyncResponse { Full = new NetMap { Serial = serial, Peers = { peers }, StunServers = { "192.0.2.1:3478", "192.0.2.1:3479" } } };
    var clock = Stopwatch.StartNew();
    node.Apply(full);
    var firstMap = clock.Elapsed.TotalMilliseconds;

    // Warm the delta path, then time one-peer endpoint changes.
    for (var i = 0; i < 20; i++) node.Apply(Delta(++serial, peers[i % n], i));
    var times = new List<double>(deltas);
    for (var i = 0; i < deltas; i++)
    {
        var delta = Delta(++serial, peers[Random.Shared.Next(n)], 1000 + i);
        var start = Stopwatch.GetTimestamp();
        node.Apply(delta);
        times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
    }
    times.Sort();

    // The reference: the same map applied whole again (every peer touched), as each delta used to be.
    var again = new SyncResponse { Full = new NetMap { Serial = ++serial, Peers = { peers }, StunServers = { "192.0.2.1:3478", "192.0.2.1:3479" } } };
    clock.Restart();
    node.Apply(again);
    var reapply = clock.Elapsed.TotalMilliseconds;

    var median = times[times.Count / 2];
    Console.WriteLine($"N = {n} peers ({Environment.ProcessorCount} cores)");
    Console.WriteLine($"  initial full map apply          {firstMap,10:F1} ms");
    Console.WriteLine($"  re-applying the whole map       {reapply,10:F2} ms   (what a delta cost before)");
    Console.WriteLine($"  one-peer delta, median / p99    {median,10:F3} / {times[(int)(times.Count * 0.99)]:F3} ms   ({reapply / median:N0}x faster than re-applying)");
    lines.Add($"delta apply at {n} peers: {median:F3} ms");
    device.Dispose();
}
Console.WriteLine();
foreach (var line in lines) Console.WriteLine(line);
return 0;

static Peer PeerNumber(int i)
{
    Span<byte> raw = stackalloc byte[32];
    Random.Shared.NextBytes(raw);
    return new Peer
    {
        NodeId = (ulong)i + 1,
        NodeKey = ByteString.CopyFrom(raw),
        Name = $"peer{i}",
        Addresses = { $"100.64.{i / 250}.{i % 250 + 1}/32", $"fd00::{i + 1:x}/128" },
        AllowedIps = { $"100.64.{i / 250}.{i % 250 + 1}/32", $"fd00::{i + 1:x}/128" },
        Endpoints = Endpoints($"198.51.100.{i % 250 + 1}:{10000 + i}"),
        Online = true,
    };
}

static Endpoints Endpoints(string address) => new()
{
    Candidates = { new Candidate { Address = address, Kind = CandidateKind.Stun } },
    NatMapping = NatMapping.EndpointIndependent,
};

static SyncResponse Delta(ulong serial, Peer peer, int change)
{
    var changed = peer.Clone();
    changed.Endpoints = Endpoints($"203.0.113.{change % 250 + 1}:{20000 + change % 40000}");
    return new SyncResponse { Delta = new NetMapDelta { Serial = serial, PeersChanged = { changed } } };
}
