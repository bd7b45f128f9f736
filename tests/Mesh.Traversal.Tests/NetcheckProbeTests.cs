using Mesh.Traversal.NatDiscovery;
using Mesh.Traversal.Stun;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;

namespace Mesh.Traversal.Tests;

public sealed class NetcheckProbeTests
{
    private static readonly NetEndpoint First = NetEndpoint.Parse("203.0.113.1:3478");
    private static readonly NetEndpoint Second = NetEndpoint.Parse("203.0.113.1:3479");
    private static readonly NetEndpoint[] Local = [NetEndpoint.Parse("192.168.1.10:41641")];

    /// <summary>Runs a probe against STUN servers that answer as <paramref name="mappedFor"/> says (null: the request is lost).</summary>
    private static NetcheckProbe Run(Func<NetEndpoint, int, NetEndpoint?> mappedFor, TimeSpan rtt)
    {
        var probe = new NetcheckProbe(First, Second, Local, TimeSpan.Zero, new SeededEntropy(1));
        var pending = new List<(TimeSpan At, byte[] Response)>();
        var attempts = new Dictionary<NetEndpoint, int>();
        var buffer = new byte[64];
        for (var now = TimeSpan.Zero; !probe.IsDone; now += TimeSpan.FromMilliseconds(10))
        {
            foreach (var (at, response) in pending.Where(p => p.At <= now).ToList())
            {
                probe.OnResponse(response, now);
                pending.RemoveAll(p => p.Response == response);
            }
            int length;
            while ((length = probe.Poll(now, buffer, out var server)) > 0)
            {
                attempts[server] = attempts.GetValueOrDefault(server) + 1;
                if (mappedFor(server, attempts[server]) is not { } mapped) continue;
                var response = new byte[StunMessage.MaxResponseSize];
                var size = StunMessage.WriteBindingSuccess(response, StunMessage.TransactionId(buffer.AsSpan(0, length)), mapped);
                pending.Add((now + rtt, response[..size]));
            }
            Assert.True(now < TimeSpan.FromSeconds(10), "the probe never finished");
        }
        return probe;
    }

    [Fact]
    public void PortKeepingNatIsEndpointIndependentWithLatencies()
    {
        var probe = Run((_, _) => NetEndpoint.Parse("198.51.100.9:41641"), TimeSpan.FromMilliseconds(30));
        Assert.Equal(NatMappingKind.EndpointIndependent, probe.Report!.Verdict.Mapping);
        Assert.Equal(TimeSpan.FromMilliseconds(30), probe.Report.FirstLatency);
    }

    [Fact]
    public void PortRandomizingNatIsEndpointDependent()
    {
        var probe = Run((server, _) => NetEndpoint.Parse(server == First ? "198.51.100.9:50001" : "198.51.100.9:50999"), TimeSpan.FromMilliseconds(30));
        Assert.Equal(NatMappingKind.EndpointDependent, probe.Report!.Verdict.Mapping);
    }

    [Fact]
    public void LostRequestsAreResentAndSilenceEndsAtTheDeadline()
    {
        var resent = Run((_, attempt) => attempt < 3 ? null : NetEndpoint.Parse("198.51.100.9:41641"), TimeSpan.FromMilliseconds(20));
        Assert.Equal(NatMappingKind.EndpointIndependent, resent.Report!.Verdict.Mapping);

        var blocked = Run((_, _) => null, TimeSpan.Zero);
        Assert.True(blocked.Report!.Verdict.UdpBlocked);
        Assert.Null(blocked.Report.FirstLatency);
    }

    [Fact]
    public void ForeignOrMalformedResponsesAreIgnored()
    {
        var probe = new NetcheckProbe(First, Second, Local, TimeSpan.Zero, new SeededEntropy(2));
        var buffer = new byte[64];
        probe.Poll(TimeSpan.Zero, buffer, out _);
        var stranger = new byte[StunMessage.MaxResponseSize];
        var size = StunMessage.WriteBindingSuccess(stranger, new byte[12], NetEndpoint.Parse("1.2.3.4:5"));
        Assert.False(probe.OnResponse(stranger.AsSpan(0, size), TimeSpan.Zero));
        Assert.False(probe.OnResponse(new byte[] { 1, 2, 3 }, TimeSpan.Zero));
        Assert.False(probe.IsDone);
    }
}
