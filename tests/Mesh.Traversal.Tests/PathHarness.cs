using System.Net;
using Mesh.Protos.V1;
using Mesh.Control;
using Mesh.Traversal.Hosting;
using Mesh.Traversal.Paths;
using Mesh.Traversal.Probes;
using Mesh.Traversal.Stun;
using Mesh.WireGuard.Conn;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Host;
using Microsoft.Extensions.Logging.Abstractions;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Tests;

/// <summary>One datagram the engine sent: from which socket, to where, with which hop limit (0: none).</summary>
internal sealed record Sent(int Socket, byte[] Bytes, NetEndpoint To, int Ttl)
{
    public bool IsProbe => ProbeCodec.LooksLikeProbe(Bytes);
}

/// <summary>
/// The world as a path engine and its bind see it, recorded: what they sent (from any socket), published and asked
/// for. It is the engine's sockets and the bind's UDP sockets at once; what a test delivers to socket 0 waits for
/// the bind's next receive.
/// </summary>
internal sealed class RecordingOutput : IPathSockets, IControlRequests, IUdpSockets
{
    public readonly List<Sent> Sent = new();
    public readonly List<Endpoints> Published = new();
    public readonly List<PublicKey> ConnectRequests = new();
    public readonly HashSet<int> OpenSockets = new();
    public readonly List<(string Relay, byte[] Frame)> StreamFrames = new();
    public readonly Dictionary<int, DatagramReceived> Receivers = new();
    private readonly Queue<(byte[] Bytes, NetEndpoint From)> _arrived = new();
    private int _nextSocket = 1;

    public void SendUdp(int socket, ReadOnlySpan<byte> datagram, NetEndpoint to, int ttl = 0) => Sent.Add(new Sent(socket, datagram.ToArray(), to, ttl));
    public void SendRelayStream(Protos.V1.Relay relay, ReadOnlySpan<byte> frame) => StreamFrames.Add((relay.Id, frame.ToArray()));
    public int OpenSocket()
    {
        OpenSockets.Add(_nextSocket);
        return _nextSocket++;
    }

    public void CloseSocket(int socket) => OpenSockets.Remove(socket);
    public void PublishEndpoints(Endpoints endpoints) => Published.Add(endpoints);
    public void RequestConnect(PublicKey peer) => ConnectRequests.Add(peer);

    public int Port => 41641;
    public bool Segmentation => false;
    public bool ReceiveCoalescing => false;

    /// <summary>A datagram reaches socket 0.</summary>
    public void Arrive(byte[] datagram, NetEndpoint from) => _arrived.Enqueue((datagram, from));

    public int Receive(ReceiveBatch batch, int timeoutMs)
    {
        batch.Clear();
        while (_arrived.TryDequeue(out var next)) batch.Append(next.Bytes, next.From, 0, null);
        return batch.Count;
    }

    public void Send(int socket, ReadOnlySpan<byte> datagram, NetEndpoint to, int ttl, SendBatch? batch) => SendUdp(socket, datagram, to, ttl);
    public void Flush(SendBatch batch) => batch.Clear();
    public int Open(DatagramReceived received)
    {
        var id = OpenSocket();
        Receivers[id] = received;
        return id;
    }

    public void Close(int socket) => CloseSocket(socket);
    public bool Rebind(int port) => true;
    public void SetFirewallMark(int mark) { }
    public void Dispose() { }

    /// <summary>What went since the last call, and forgets it.</summary>
    public List<Sent> Take()
    {
        var taken = Sent.ToList();
        Sent.Clear();
        return taken;
    }
}

/// <summary>
/// A path engine and the mesh bind over it on a manual clock, behind a recording output, with the coordinator's two
/// STUN servers answering as a NAT would. The bind's relay links dial nowhere.
/// </summary>
internal sealed class PathHarness : IDisposable
{
    public static readonly NetEndpoint StunFirst = NetEndpoint.Parse("203.0.113.1:3478");
    public static readonly NetEndpoint StunSecond = NetEndpoint.Parse("203.0.113.1:3479");

    public readonly ManualClock Clock = new();
    public readonly RecordingOutput Output = new();
    public readonly PrivateKey Key = PrivateKey.Generate();
    public readonly PathEngine Engine;
    public readonly MeshBind Bind;
    public readonly MeshLinks Links;
    private readonly ReceiveBatch[] _batches = [new(), new()];

    public PathHarness(PathOptions? options = null, int seed = 1)
    {
        Engine = new PathEngine(Key, Clock, new SeededEntropy(seed), Output, Output, options);
        Links = new MeshLinks(Output, CoordinatorTargets.ForNode([new Uri("http://127.0.0.1:1")], Key.PublicKey),
            (_, _) => ValueTask.FromException<(System.Net.WebSockets.WebSocket, string)>(new IOException("no relay links in unit tests")), NullLogger.Instance);
        Bind = new MeshBind(Links, Engine, new IoFailures(NullLogger.Instance));
    }

    /// <summary>A datagram reaches socket 0 and the bind sorts it: returns what it keeps for the device, with the source it credits.</summary>
    public List<(byte[] Datagram, NetEndpoint Source)> Receive(byte[] datagram, NetEndpoint from)
    {
        Output.Arrive(datagram, from);
        return Drain(0);
    }

    /// <summary>What the bind's receiver keeps for the device now.</summary>
    public List<(byte[] Datagram, NetEndpoint Source)> Drain(int receiver)
    {
        var kept = new List<(byte[], NetEndpoint)>();
        var batch = _batches[receiver];
        var count = Bind.Receive(receiver, batch, 0);
        for (var i = 0; i < count; i++) kept.Add((batch.Datagram(i).ToArray(), batch.Source(i)));
        return kept;
    }

    /// <summary>
    /// Runs NAT discovery to its end: the host has <paramref name="local"/>, and the STUN servers see it as
    /// <paramref name="mappedFirst"/> and <paramref name="mappedSecond"/> (two ports: a NAT that maps by destination).
    /// </summary>
    public void Discover(NetEndpoint local, NetEndpoint mappedFirst, NetEndpoint mappedSecond) => Discover([local], mappedFirst, mappedSecond);

    /// <summary>The same for a host with several addresses (one port).</summary>
    public void Discover(NetEndpoint[] locals, NetEndpoint mappedFirst, NetEndpoint mappedSecond)
    {
        Engine.NetworkChanged(locals.Select(l => l.Address), locals[0].Port);
        Engine.SetStunServers(StunFirst, StunSecond);
        var response = new byte[StunMessage.MaxResponseSize];
        for (var step = 0; Engine.LastNetcheck is null; step++)
        {
            Assert.True(step < 1000, "NAT discovery never finished");
            Engine.Tick();
            foreach (var sent in Output.Take())
            {
                if (!StunMessage.LooksLikeStun(sent.Bytes)) continue;
                var mapped = sent.To == StunFirst ? mappedFirst : mappedSecond;
                var length = StunMessage.WriteBindingSuccess(response, StunMessage.TransactionId(sent.Bytes), mapped);
                Engine.OnDatagram(0, response.AsSpan(0, length), sent.To);
            }
            Clock.Advance(TimeSpan.FromMilliseconds(10));
        }
        Output.Take();
    }

    public void Dispose()
    {
        Bind.Dispose();
        Key.Dispose();
    }
}

/// <summary>The production relay server at a UDP address, as the relay tests' nodes reach it.</summary>
internal sealed class TestRelay : IDisposable
{
    public static readonly NetEndpoint Udp = NetEndpoint.Parse("203.0.113.1:3480");

    private readonly PrivateKey _key = PrivateKey.Generate();
    private readonly Mesh.Traversal.Relay.RelayServer _server;

    public TestRelay() => _server = new Mesh.Traversal.Relay.RelayServer(_key, _ => true);

    /// <summary>Sessions the server holds.</summary>
    public int Clients => _server.Clients;

    /// <summary>The relay as the netmap announces it (with its stream URL when <paramref name="tcp"/>).</summary>
    public Protos.V1.Relay Announced(bool tcp = false) => new()
    {
        Id = "coordinator",
        UdpAddress = Udp.ToString(),
        TcpUrl = tcp ? "/relay" : "",
        NodeKey = Google.Protobuf.ByteString.CopyFrom(_key.PublicKey.Span),
    };

    /// <summary>A frame from <paramref name="from"/> reaches the server; returns what it sends, and to whom.</summary>
    public List<(byte[] Frame, NetEndpoint To)> Receive(byte[] frame, NetEndpoint from, TimeSpan now)
    {
        var frames = new Frames();
        _server.Receive(frame, from, now, frames);
        return frames.Sent;
    }

    public void Dispose() => _key.Dispose();

    private sealed class Frames : Mesh.Traversal.Relay.IRelayOutput
    {
        public readonly List<(byte[] Frame, NetEndpoint To)> Sent = new();

        public void Send(ReadOnlySpan<byte> frame, NetEndpoint to) => Sent.Add((frame.ToArray(), to));
    }
}
