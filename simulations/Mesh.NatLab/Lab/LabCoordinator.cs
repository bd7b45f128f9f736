using System.Net;
using Google.Protobuf;
using Grpc.Core;
using Mesh.Coordinator.Api;
using Mesh.Coordinator.Control;
using Mesh.Coordinator.Store;
using Mesh.Coordinator.Sync;
using Mesh.NatLab.Net;
using Mesh.NatLab.Sim;
using Mesh.Protos.V1;
using System.Net.WebSockets;
using Mesh.Transport;
using Mesh.Traversal.Hosting;
using Mesh.Traversal.Relay;
using Mesh.Traversal.Stun;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;
using Mesh.Control;
using Mesh.WireGuard.Keys;

namespace Mesh.NatLab.Lab;

/// <summary>
/// The coordinator on the virtual internet: the production node registry, key ring, netmap publisher and hub
/// (<see cref="LabMesh"/>, with the SQLite store and timers on virtual time) behind the production gRPC
/// <see cref="CoordinatorService"/> (served by <see cref="VirtualGrpc"/> with a control-plane latency), STUN on
/// two ports, and the production <see cref="RelayServer"/> over UDP and, for networks that block UDP, the
/// production relay streams (<see cref="RelayStreams"/>: WebSockets) over virtual TCP that UDP blocking does not
/// touch. It can be stopped and started again from the same store.
/// </summary>
public sealed class LabCoordinator : IRelayOutput, IDisposable
{
    public const int StunPort = 3478;
    public const int RelayPort = 3480;
    public const int GrpcPort = 443;
    public const string RelayPath = "/relay";
    public static readonly TimeSpan ControlLatency = TimeSpan.FromMilliseconds(15);

    private readonly Network _network;
    private readonly LabTimeProvider _time;
    private readonly string _dataDirectory;
    private readonly VirtualGrpc _grpc;
    private readonly List<VirtualTcp> _connections = new();
    private readonly byte[] _stunResponse = new byte[StunMessage.MaxResponseSize];
    private SqliteStore? _store;
    private RelayStreams? _relayStreams;

    public LabCoordinator(Network network, LabHost host, string dataDirectory)
    {
        _network = network;
        _time = new LabTimeProvider(network.Scheduler);
        Host = host;
        _dataDirectory = dataDirectory;
        _grpc = new VirtualGrpc(network.Scheduler, ControlLatency);
    }

    public LabHost Host { get; }
    public LabMesh Mesh { get; private set; } = null!;
    public RelayServer Relay { get; private set; } = null!;
    public bool Up { get; private set; }
    public string AuthKey { get; private set; } = "";
    public string RelayId => "coordinator";
    public Uri Url => new($"http://{Host.Address}:{GrpcPort}");

    /// <summary>The sync streams the service holds open now.</summary>
    public int OpenCalls => _grpc.OpenCalls;
    private Scheduler Scheduler => _network.Scheduler;
    private TimeSpan Now => Scheduler.Now;

    public void Start()
    {
        Directory.CreateDirectory(_dataDirectory);
        _store = SqliteStore.Open(Path.Combine(_dataDirectory, "coordinator.db"));
        Mesh = LabMesh.Start(_store, Scheduler, identity => new Relay
        {
            Id = RelayId,
            UdpAddress = $"{Host.Address}:{RelayPort}",
            TcpUrl = RelayPath,
            NodeKey = ByteString.CopyFrom(identity.Key.PublicKey.Span),
        });
        var mesh = Mesh;
        Relay = new RelayServer(mesh.Identity.Key, key => mesh.Hub.IsMember(key), new SeededEntropy(_network.Random.Next()));
        var relay = Relay;
        _relayStreams = new RelayStreams((frame, from) => relay.Receive(frame, from, Now, _relayStreams!), relay.Disconnected, relay.IsAuthenticated, this, _time, synchronousSends: true);
        if (AuthKey.Length == 0) AuthKey = LabMesh.Completed(Mesh.Keys.CreatePreAuthKeyAsync(reusable: true, ephemeral: false, null, [], null, LabClock.Epoch + Now)).Value.Secret;
        Host.Bind(StunPort, AnswerStun);
        Host.Bind(StunPort + 1, AnswerStun);
        Host.Bind(RelayPort, d => relay.Receive(d.Payload, d.Source, Now, _relayStreams));
        _grpc.Start(new CoordinatorService(mesh, new Challenges(mesh.Identity, new MeshOptions().ChallengeLifetime, _time), mesh.Hub, StunPort, Host.Address.ToString(), _time).Bind);
        Up = true;
    }

    /// <summary>How an agent on <paramref name="host"/> reaches the service: gRPC calls over the virtual network.</summary>
    public ICoordinatorChannels ChannelsFor(LabHost host) => new Channels(_grpc.Invoker($"ipv4:{host.Address}:{LabAgent.MainPort}"));

    /// <summary>One replica; a virtual call needs no connection of its own, so there is none to keep or drop.</summary>
    private sealed class Channels(CallInvoker invoker) : ICoordinatorChannels
    {
        public CallInvoker For(CoordinatorTarget target) => invoker;

        public void Reset()
        {
        }

        public void Dispose()
        {
        }
    }

    /// <summary>A node that is not in the lab's network joins through the production registration (proof and all), as churn for the others' netmaps.</summary>
    public void RegisterOther(string name)
    {
        using var key = PrivateKey.Generate();
        var challenge = Mesh.Registry.IssueChallenge();
        var proof = RegistrationProof.Compute(key, new PublicKey(challenge.CoordinatorKey), challenge.Nonce, AuthKey, name);
        LabMesh.Completed(Mesh.Registry.RegisterAsync(new RegistrationRequest(key.PublicKey.Span.ToArray(), AuthKey, name, challenge.Nonce, proof)));
    }

    public void Rename(string name, string newName) => LabMesh.Completed(Mesh.Registry.RenameAsync(name, newName));

    /// <summary>Only the embedded relay dies (the control plane stays up).</summary>
    public void StopRelay() => Host.Unbind(RelayPort);

    /// <summary>The process dies: streams break, STUN and the relay go silent. The store survives for <see cref="Start"/>.</summary>
    public void Stop()
    {
        if (!Up) return;
        Up = false;
        Host.Unbind(StunPort);
        Host.Unbind(StunPort + 1);
        Host.Unbind(RelayPort);
        _grpc.Stop();
        foreach (var connection in _connections) Scheduler.After(ControlLatency, connection.Reset);
        Mesh.Hub.CloseAll(new Problem(Failure.Unavailable, "The coordinator is shutting down."));
        _connections.Clear();
        _store!.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _store = null;
    }

    /// <summary>
    /// Opens a relay stream as an agent's connector would: a TCP and HTTP round trip, then a WebSocket on each
    /// end of a virtual TCP connection, the server's end served by the production <see cref="RelayStreams"/>.
    /// </summary>
    public async ValueTask<(WebSocket Socket, string Transport)> ConnectRelayStreamAsync(Uri url, CancellationToken cancellationToken)
    {
        await Task.Delay(ControlLatency * 2, _time, cancellationToken).ConfigureAwait(false);
        if (url.Host != Host.Address.ToString() || url.AbsolutePath != RelayPath) throw new IOException($"Nothing serves {url} in the lab.");
        if (!Up || _relayStreams is not { } streams) throw new IOException("Connection refused (the coordinator is down).");
        var connection = VirtualTcp.Open(Scheduler, ControlLatency);
        _connections.Add(connection);
        var options = new WebSocketCreationOptions { KeepAliveInterval = TimeSpan.Zero };
        _ = streams.ServeAsync(WebSocket.CreateFromStream(connection.Server, new WebSocketCreationOptions { IsServer = true, KeepAliveInterval = TimeSpan.Zero }), CancellationToken.None);
        return (WebSocket.CreateFromStream(connection.Client, options), "virtual TCP");
    }

    /// <summary>Frames for the relay's UDP clients; stream clients' frames go down their streams.</summary>
    public void Send(ReadOnlySpan<byte> frame, NetEndpoint to) => Host.Send(RelayPort, to, frame);

    private void AnswerStun(Datagram datagram)
    {
        var length = StunMessage.Answer(datagram.Payload, datagram.Source, _stunResponse, stackalloc ushort[8]);
        if (length > 0) Host.Send(datagram.Destination.Port, datagram.Source, _stunResponse.AsSpan(0, length));
    }

    public void Dispose()
    {
        Stop();
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
