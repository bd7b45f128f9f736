using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Mesh.Protos.V1;
using Mesh.WireGuard.Keys;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

// mesh-hostile-coordinator LISTEN routes HOSTILE,PREFIXES | flood SINK-IP
// A coordinator that registers every node and lies in its netmaps, for the agent's trust tests (h2c; agents connect
// with --insecure-plaintext). "routes": every real peer also claims the hostile prefixes, and two fake peers join
// (a low-order key, a key of the wrong size). "flood": a fake member whose 16 candidates are all at the sink
// changes them and asks to connect every 100 ms, as a member aiming the mesh at a third party would.
var listen = IPEndPoint.Parse(args[0]);
var mesh = new HostileMesh(args[1], args[2].Split(',', StringSplitOptions.RemoveEmptyEntries));
var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(listen, l => l.Protocols = HttpProtocols.Http2));
builder.Services.AddGrpc();
builder.Services.AddSingleton(mesh);
var app = builder.Build();
app.MapGrpcService<HostileCoordinatorService>();
await app.RunAsync();

internal sealed class HostileMesh(string mode, string[] hostile)
{
    public readonly object Lock = new();
    public readonly Dictionary<ByteString, Peer> Nodes = new();
    public readonly Dictionary<ByteString, string> Sources = new();
    public readonly Dictionary<ByteString, System.Threading.Channels.Channel<SyncResponse>> Streams = new();
    public readonly string Mode = mode;
    public readonly string[] Hostile = hostile;
    public readonly PrivateKey Key = PrivateKey.Generate();
    public readonly ByteString Member = ByteString.CopyFrom(PrivateKey.Generate().PublicKey.Span);
    public ulong Serial = 1;

    /// <summary>
    /// A node as its peers are told of it: its own endpoints, or (until it publishes any, which it does after NAT
    /// discovery, and this mesh runs no STUN) the address its stream came from at the agents' default port.
    /// </summary>
    public Peer Entry(Peer node)
    {
        var entry = node.Clone();
        entry.Endpoints.NatMapping = NatMapping.EndpointIndependent;
        if (entry.Endpoints.Candidates.Count == 0 && Sources.TryGetValue(node.NodeKey, out var source))
        {
            entry.Endpoints.Candidates.Add(new Candidate { Address = $"{source}:41641", Kind = CandidateKind.Local });
        }
        if (Mode == "routes") entry.AllowedIps.Add(Hostile);
        return entry;
    }

    public NetMap Map()
    {
        var map = new NetMap { Serial = Serial, MeshPrefixes = { "100.64.0.0/10", "fd00:5::/48", "0.0.0.0/0" } };
        foreach (var node in Nodes.Values) map.Peers.Add(Entry(node));
        if (Mode == "routes")
        {
            map.Peers.Add(Fake(900, ByteString.CopyFrom([1, .. new byte[31]]), "low-order", "100.64.3.1/32"));
            map.Peers.Add(Fake(901, ByteString.CopyFrom(new byte[16]), "short-key", "100.64.3.2/32"));
        }
        else map.Peers.Add(Fake(902, Member, "member", "100.64.3.3/32"));
        return map;
    }

    private static Peer Fake(ulong id, ByteString key, string name, string address) =>
        new() { NodeId = id, NodeKey = key, Name = name, Addresses = { address }, AllowedIps = { address }, Online = true, Endpoints = new Endpoints() };

    /// <summary>The member's endpoints of the moment: 16 candidates, all at the sink, on ports that move every round.</summary>
    public Endpoints SinkEndpoints(int round) => new()
    {
        NatMapping = NatMapping.EndpointIndependent,
        Candidates = { Enumerable.Range(0, 16).Select(i => new Candidate { Address = $"{Hostile[0]}:{20000 + (round * 16 + i) % 40000}", Kind = CandidateKind.Local }) },
    };
}

internal sealed class HostileCoordinatorService(HostileMesh mesh) : Coordinator.CoordinatorBase
{
    public override Task<Challenge> GetChallenge(GetChallengeRequest request, ServerCallContext context) =>
        Task.FromResult(new Challenge { CoordinatorKey = ByteString.CopyFrom(mesh.Key.PublicKey.Span), Nonce = ByteString.CopyFrom(new byte[32]) });

    public override Task<RegisterResponse> Register(RegisterRequest request, ServerCallContext context)
    {
        lock (mesh.Lock)
        {
            if (!mesh.Nodes.TryGetValue(request.NodeKey, out var node))
            {
                var n = mesh.Nodes.Count + 1;
                node = new Peer
                {
                    NodeId = (ulong)n, NodeKey = request.NodeKey, Name = request.Hostname, Online = true,
                    Addresses = { $"100.64.0.{n}/32", $"fd00:5::{n}/128" }, AllowedIps = { $"100.64.0.{n}/32", $"fd00:5::{n}/128" },
                    Endpoints = new Endpoints(),
                };
                mesh.Nodes[request.NodeKey] = node;
            }
            // "ipv4:192.168.77.2:40000": the address without the port.
            mesh.Sources[request.NodeKey] = context.Peer[(context.Peer.IndexOf(':') + 1)..context.Peer.LastIndexOf(':')];
            return Task.FromResult(new RegisterResponse
            {
                State = RegistrationState.Approved, NodeId = node.NodeId, Name = node.Name, Addresses = { node.Addresses }, SessionToken = "mst_lying",
            });
        }
    }

    public override async Task Sync(IAsyncStreamReader<SyncRequest> requests, IServerStreamWriter<SyncResponse> responses, ServerCallContext context)
    {
        if (!await requests.MoveNext() || requests.Current.Hello is not { } hello) return;
        var key = hello.NodeKey;
        // Each stream writes only its own queue: other streams' changes are queued to it.
        var outbox = System.Threading.Channels.Channel.CreateUnbounded<SyncResponse>();
        lock (mesh.Lock)
        {
            mesh.Nodes[key].Endpoints = hello.Endpoints ?? new Endpoints();
            outbox.Writer.TryWrite(new SyncResponse { Full = mesh.Map() });
            // The streams already open learn of this node, as a coordinator's delta would tell them.
            var joined = Delta(mesh.Entry(mesh.Nodes[key]));
            foreach (var other in mesh.Streams.Values) other.Writer.TryWrite(joined);
            mesh.Streams[key] = outbox;
        }
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        var writing = WriteAsync(outbox, responses, stop.Token);
        _ = mesh.Mode == "flood" ? FloodAsync(outbox, stop.Token) : IntroduceAsync(key, outbox, stop.Token);
        try
        {
            while (await requests.MoveNext())
            {
                if (requests.Current.Endpoints is not { } endpoints) continue;
                lock (mesh.Lock)
                {
                    mesh.Nodes[key].Endpoints = endpoints;
                    var delta = Delta(mesh.Entry(mesh.Nodes[key]));
                    foreach (var stream in mesh.Streams.Values) stream.Writer.TryWrite(delta);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
        {
        }
        lock (mesh.Lock) mesh.Streams.Remove(key);
        stop.Cancel();
        await writing;
    }

    private static async Task WriteAsync(System.Threading.Channels.Channel<SyncResponse> outbox, IServerStreamWriter<SyncResponse> responses, CancellationToken stop)
    {
        try
        {
            await foreach (var message in outbox.Reader.ReadAllAsync(stop)) await responses.WriteAsync(message);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
        {
        }
    }

    /// <summary>A delta with the next serial; the caller holds the mesh's lock.</summary>
    private SyncResponse Delta(Peer changed) => new() { Delta = new NetMapDelta { Serial = ++mesh.Serial, PeersChanged = { changed } } };

    /// <summary>
    /// What a coordinator's connect requests do, every second: tells the stream of every other node's endpoints, so
    /// the agents probe each other (this mesh runs no STUN, and agents probe unasked only after NAT discovery).
    /// </summary>
    private async Task IntroduceAsync(ByteString self, System.Threading.Channels.Channel<SyncResponse> outbox, CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            lock (mesh.Lock)
            {
                foreach (var (key, node) in mesh.Nodes)
                {
                    if (!key.Equals(self)) outbox.Writer.TryWrite(new SyncResponse { Connect = new ConnectNotice { PeerKey = key, Endpoints = mesh.Entry(node).Endpoints } });
                }
            }
            await Task.Delay(1000, stopping).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    /// <summary>A member aiming the agent at the sink: new candidates and a connect request every 100 ms.</summary>
    private async Task FloodAsync(System.Threading.Channels.Channel<SyncResponse> outbox, CancellationToken stopping)
    {
        for (var round = 0; !stopping.IsCancellationRequested; round++)
        {
            var endpoints = mesh.SinkEndpoints(round);
            var member = new Peer { NodeId = 902, NodeKey = mesh.Member, Name = "member", Addresses = { "100.64.3.3/32" }, AllowedIps = { "100.64.3.3/32" }, Online = true, Endpoints = endpoints };
            lock (mesh.Lock) outbox.Writer.TryWrite(Delta(member));
            outbox.Writer.TryWrite(new SyncResponse { Connect = new ConnectNotice { PeerKey = mesh.Member, Endpoints = endpoints } });
            await Task.Delay(100, stopping).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }
}
