using System.Net;
using Mesh.Protos.V1;
using Mesh.Traversal.Paths;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Tests;

/// <summary>
/// What a member can make this agent send toward addresses it names (a third party's, say): whatever its
/// endpoints and connect requests, no more than the probe budget.
/// </summary>
public sealed class ProbeBudgetTests
{
    private sealed class CountingOutput : IPathSockets, IControlRequests
    {
        public readonly Dictionary<IPAddress, int> Sent = new();

        public void SendUdp(int socket, ReadOnlySpan<byte> datagram, NetEndpoint to, int ttl = 0) => Sent[to.Address] = Sent.GetValueOrDefault(to.Address) + 1;
        public void SendRelayStream(Protos.V1.Relay relay, ReadOnlySpan<byte> frame) { }
        public int OpenSocket() => -1;
        public void CloseSocket(int socket) { }
        public void PublishEndpoints(Endpoints endpoints) { }
        public void RequestConnect(PublicKey peer) { }
    }

    private static Endpoints Sink(int first, int count, CandidateKind kind, NatMapping mapping = NatMapping.EndpointIndependent) => new()
    {
        NatMapping = mapping,
        Candidates = { Enumerable.Range(first, count).Select(i => new Candidate { Address = $"198.51.100.9:{10000 + i}", Kind = kind }) },
    };

    [Fact]
    public void AMemberThatFloodsEndpointsAndConnectRequestsGetsNoMoreThanTheBudget()
    {
        var clock = new ManualClock();
        var output = new CountingOutput();
        using var key = PrivateKey.Generate();
        var options = new PathOptions();
        var engine = new PathEngine(key, clock, new SeededEntropy(5), output, output, options);
        using var member = PrivateKey.Generate();
        var sink = IPAddress.Parse("198.51.100.9");
        var seconds = 30;
        for (var step = 0; step < seconds * 100; step++)
        {
            // Every 10 ms: new candidates (64 of them, all at the sink), and a connect notice naming them.
            var endpoints = Sink(step * 64 % 60000, 64, step % 2 == 0 ? CandidateKind.Local : CandidateKind.Stun);
            engine.UpsertPeer(member.PublicKey, endpoints, online: true);
            engine.OnConnectNotice(member.PublicKey, endpoints);
            engine.Tick();
            clock.Advance(TimeSpan.FromMilliseconds(10));
        }
        var bound = options.ProbeBurst + options.ProbesPerSecond * seconds;
        Assert.InRange(output.Sent.GetValueOrDefault(sink), 1, bound);
        Assert.True(engine.ProbesOverBudget > 0);
    }
}
