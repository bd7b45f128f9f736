using Mesh.Protos.V1;
using Mesh.Traversal.Paths;
using Mesh.WireGuard.Core;

namespace Mesh.Traversal.Tests;

/// <summary>
/// Two hosts with two links between them (a LAN and a WAN, no NAT on either), each with its own latency and loss:
/// the path engine takes the better link by latency and loss, and keeps checking while traffic flows.
/// </summary>
public sealed class PathChoiceTests : IDisposable
{
    private const int Port = 41641;
    private static readonly NetEndpoint LanA = NetEndpoint.Parse($"192.168.1.1:{Port}");
    private static readonly NetEndpoint LanB = NetEndpoint.Parse($"192.168.1.2:{Port}");
    private static readonly NetEndpoint WanA = NetEndpoint.Parse($"198.51.100.1:{Port}");
    private static readonly NetEndpoint WanB = NetEndpoint.Parse($"198.51.100.2:{Port}");

    private readonly PathHarness _a = new(seed: 1);
    private readonly PathHarness _b = new(seed: 2);
    private readonly Random _loss = new(3);
    private readonly List<(TimeSpan At, PathHarness To, byte[] Bytes, NetEndpoint From)> _inFlight = new();
    private readonly Dictionary<string, (TimeSpan Latency, double Loss)> _links = new()
    {
        ["lan"] = (TimeSpan.FromMilliseconds(1), 0),
        ["wan"] = (TimeSpan.FromMilliseconds(20), 0),
    };
    private NetEndpoint _synthetic;

    public PathChoiceTests()
    {
        // Both hosts are public on each link: STUN sees each at its WAN address, with no NAT.
        _a.Discover([LanA, WanA], WanA, WanA);
        _b.Discover([LanB, WanB], WanB, WanB);
        _synthetic = _a.Engine.UpsertPeer(_b.Key.PublicKey, EndpointsOf(LanB, WanB), online: true);
        _b.Engine.UpsertPeer(_a.Key.PublicKey, EndpointsOf(LanA, WanA), online: true);
    }

    public void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
    }

    private static Endpoints EndpointsOf(NetEndpoint lan, NetEndpoint wan) => new()
    {
        NatMapping = NatMapping.None,
        Candidates =
        {
            new Candidate { Address = lan.ToString(), Kind = CandidateKind.Local },
            new Candidate { Address = wan.ToString(), Kind = CandidateKind.Local },
        },
    };

    /// <summary>Runs both engines for a while in steps of 0.1 ms, with a's traffic to b flowing (a packet every 10 ms).</summary>
    private void Run(TimeSpan duration)
    {
        var transport = new byte[32];
        transport[0] = 4;
        var step = TimeSpan.FromMilliseconds(0.1);
        for (var steps = 0; steps < duration / step; steps++)
        {
            if (steps % 100 == 0) _a.Bind.Send(transport, _synthetic, null);
            if (steps % 10 == 0)
            {
                _a.Engine.Tick();
                _b.Engine.Tick();
            }
            Carry(_a, _b);
            Carry(_b, _a);
            Deliver();
            _a.Clock.Advance(step);
            _b.Clock.Advance(step);
        }
    }

    /// <summary>What one host sent goes onto the link its destination is on (and nowhere else), with that link's latency and loss.</summary>
    private void Carry(PathHarness from, PathHarness to)
    {
        if (from.Output.Sent.Count == 0) return;
        var lanSelf = from == _a ? LanA : LanB;
        var wanSelf = from == _a ? WanA : WanB;
        var lanPeer = from == _a ? LanB : LanA;
        var wanPeer = from == _a ? WanB : WanA;
        foreach (var sent in from.Output.Take())
        {
            var link = sent.To == lanPeer ? "lan" : sent.To == wanPeer ? "wan" : null;
            if (link is null) continue;
            var (latency, loss) = _links[link];
            if (_loss.NextDouble() < loss) continue;
            _inFlight.Add((from.Clock.Now + latency, to, sent.Bytes, link == "lan" ? lanSelf : wanSelf));
        }
    }

    private void Deliver()
    {
        var now = _a.Clock.Now;
        for (var i = 0; i < _inFlight.Count; i++)
        {
            var item = _inFlight[i];
            if (item.At > now) continue;
            _inFlight.RemoveAt(i--);
            item.To.Receive(item.Bytes, item.From);
        }
    }

    private PeerPathStatus StatusAtA() => _a.Engine.StatusOf(_b.Key.PublicKey)!;

    [Fact]
    public void OfTwoWorkingPathsTheFasterIsChosen()
    {
        Run(TimeSpan.FromSeconds(3));
        Assert.Equal(PathKind.Direct, StatusAtA().Path);
        Assert.Equal(LanB, StatusAtA().Endpoint);
    }

    /// <summary>A fifth of the packets lost each way: the path still answers well within the trust window, but a third of its pings go unanswered.</summary>
    [Fact]
    public void AFasterPathThatLosesAFifthEachWayLosesToASlightlySlowerCleanOne()
    {
        _links["lan"] = (TimeSpan.FromMilliseconds(1), 0.2);
        _links["wan"] = (TimeSpan.FromMilliseconds(1.2), 0);
        Run(TimeSpan.FromSeconds(30));
        Assert.Equal(WanB, StatusAtA().Endpoint);
    }

    [Fact]
    public void WhileTrafficFlowsTheChoiceIsCheckedAgainAndFollowsTheBetterPath()
    {
        Run(TimeSpan.FromSeconds(3));
        Assert.Equal(LanB, StatusAtA().Endpoint);
        // The LAN turns lossy and slow without dying (a failing Wi-Fi): the WAN is now the better path.
        _links["lan"] = (TimeSpan.FromMilliseconds(40), 0.4);
        Run(TimeSpan.FromSeconds(30));
        Assert.Equal(WanB, StatusAtA().Endpoint);
        // And back: the LAN recovers, and is taken again without the WAN failing.
        _links["lan"] = (TimeSpan.FromMilliseconds(1), 0);
        Run(TimeSpan.FromSeconds(30));
        Assert.Equal(LanB, StatusAtA().Endpoint);
    }
}
