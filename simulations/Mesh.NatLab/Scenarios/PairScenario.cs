using Mesh.NatLab.Lab;
using Mesh.Traversal.Paths;

namespace Mesh.NatLab.Scenarios;

public enum Outcome
{
    Direct,
    Relayed,
    Failed,
}

/// <summary>One cell of the matrix: what happened between an agent in profile A and one in profile B.</summary>
public sealed record PairResult(
    string A,
    string B,
    Outcome Outcome,
    Technique Technique,
    string Transport,
    TimeSpan? FirstPacket,
    TimeSpan? ToDirect,
    int LostWhileSwitching,
    string Reason);

/// <summary>Two agents, one per profile, with traffic both ways from the start; the outcome is read after <see cref="Duration"/>.</summary>
public static class PairScenario
{
    public static readonly TimeSpan Duration = TimeSpan.FromSeconds(40);
    public static readonly TimeSpan TrafficInterval = TimeSpan.FromMilliseconds(50);

    public static PairResult Run(Profile a, Profile b, int seed, PathOptions options)
    {
        using var world = new World(seed);
        var left = a.Build(world, "a", options);
        var right = b.Build(world, "b", options);
        var there = new TrafficFlow(world.Scheduler, left, right, TrafficInterval, 1);
        var back = new TrafficFlow(world.Scheduler, right, left, TrafficInterval, 2);
        left.Start();
        right.Start();
        there.Start();
        back.Start();
        TimeSpan? directAt = null;
        world.Scheduler.Every(TimeSpan.FromMilliseconds(20), () =>
        {
            if (directAt is null && left.PathTo(right)?.Path == PathKind.Direct && right.PathTo(left)?.Path == PathKind.Direct) directAt = world.Scheduler.Now;
            return directAt is null;
        });
        world.Scheduler.RunUntil(Duration);

        var online = Later(left.OnlineAt, right.OnlineAt);
        var status = left.PathTo(right);
        var recent = Duration - TimeSpan.FromSeconds(5);
        var flowing = there.LastDelivered >= recent && back.LastDelivered >= recent;
        var outcome = !flowing || status is null ? Outcome.Failed
            : status.Path == PathKind.Direct ? Outcome.Direct
            : status.Path == PathKind.Relay ? Outcome.Relayed
            : Outcome.Failed;
        var transport = outcome switch
        {
            Outcome.Direct => "udp",
            Outcome.Relayed => a == Profiles.UdpBlocked || b == Profiles.UdpBlocked ? "tcp relay" : "udp relay",
            _ => "",
        };
        var firstPacket = Later(there.FirstDelivered, back.FirstDelivered);
        var until = Duration - TimeSpan.FromSeconds(1);
        return new PairResult(a.Name, b.Name, outcome,
            outcome == Outcome.Direct ? status!.Technique : Technique.None,
            transport,
            firstPacket - online,
            outcome == Outcome.Direct ? directAt - online : null,
            there.LostAfterFirst(until) + back.LostAfterFirst(until),
            status?.Reason ?? "no status");
    }

    private static TimeSpan? Later(TimeSpan? x, TimeSpan? y) => x is null || y is null ? null : x > y ? x : y;

    /// <summary>
    /// What the matrix must show: direct wherever one side's mapping is endpoint-independent (the hard-NAT technique
    /// covers one hard side), its router maps a port on request, or both have routed IPv6; relayed otherwise, never failed.
    /// </summary>
    public static Outcome Expected(Profile a, Profile b, bool hardNatTechnique)
    {
        if (a == Profiles.UdpBlocked || b == Profiles.UdpBlocked) return Outcome.Relayed;
        if (a == Profiles.PortMapping || b == Profiles.PortMapping) return Outcome.Direct;
        // Two homes with routed IPv6 meet over it; toward an IPv4-only peer, an IPv6 home is the hard NAT it is for IPv4.
        if (a == Profiles.IPv6 && b == Profiles.IPv6) return Outcome.Direct;
        if (a == Profiles.IPv6) a = Profiles.Symmetric;
        if (b == Profiles.IPv6) b = Profiles.Symmetric;
        if (a == Profiles.Symmetric && b == Profiles.Symmetric) return Outcome.Relayed;
        var hard = a == Profiles.Symmetric ? b : b == Profiles.Symmetric ? a : null;
        if (hard is null) return Outcome.Direct;
        // Against a hard NAT, only a peer that admits the hard side's new mapping gets through without the search.
        var admitsUnknownPorts = hard == Profiles.Public || hard == Profiles.FullCone || hard == Profiles.RestrictedCone;
        return admitsUnknownPorts || hardNatTechnique ? Outcome.Direct : Outcome.Relayed;
    }
}
