using System.Net;
using Mesh.Protos.V1;
using Mesh.Traversal.Paths;
using Mesh.Traversal.Probes;
using Mesh.Traversal.Stun;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Tests;

/// <summary>One datagram the engine sent: from which socket, to where, with which hop limit (0: none).</summary>
internal sealed record Sent(int Socket, byte[] Bytes, NetEndpoint To, int Ttl)
{
    public bool IsProbe => ProbeCodec.LooksLikeProbe(Bytes);
}

/// <summary>The world as a path engine sees it, recorded: what it sent, published and asked for.</summary>
internal sealed class RecordingOutput : IPathOutput
{
    public readonly List<Sent> Sent = new();
    public readonly List<Endpoints> Published = new();
    public readonly List<PublicKey> ConnectRequests = new();
    public readonly HashSet<int> OpenSockets = new();
    public readonly List<(string Relay, byte[] Frame)> StreamFrames = new();
    private int _nextSocket = 1;

    public void SendUdp(int socket, ReadOnlySpan<byte> datagram, NetEndpoint to, int ttl = 0) => Sent.Add(new Sent(socket, datagram.ToArray(), to, ttl));
    public void SendRelayStream(string relayId, ReadOnlySpan<byte> frame) => StreamFrames.Add((relayId, frame.ToArray()));
    public void DeliverWireGuard(ReadOnlySpan<byte> datagram, NetEndpoint from) { }
    public int OpenSocket()
    {
        OpenSockets.Add(_nextSocket);
        return _nextSocket++;
    }

    public void CloseSocket(int socket) => OpenSockets.Remove(socket);
    public void PublishEndpoints(Endpoints endpoints) => Published.Add(endpoints);
    public void RequestConnect(PublicKey peer) => ConnectRequests.Add(peer);

    /// <summary>What went since the last call, and forgets it.</summary>
    public List<Sent> Take()
    {
        var taken = Sent.ToList();
        Sent.Clear();
        return taken;
    }
}

/// <summary>A path engine on a manual clock behind a recording output, with the coordinator's two STUN servers answering as a NAT would.</summary>
internal sealed class PathHarness : IDisposable
{
    public static readonly NetEndpoint StunFirst = NetEndpoint.Parse("203.0.113.1:3478");
    public static readonly NetEndpoint StunSecond = NetEndpoint.Parse("203.0.113.1:3479");

    public readonly ManualClock Clock = new();
    public readonly RecordingOutput Output = new();
    public readonly PrivateKey Key = PrivateKey.Generate();
    public readonly PathEngine Engine;

    public PathHarness(PathOptions? options = null, int seed = 1)
    {
        Engine = new PathEngine(Key, Clock, new SeededEntropy(seed), Output, options);
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

    public void Dispose() => Key.Dispose();
}
