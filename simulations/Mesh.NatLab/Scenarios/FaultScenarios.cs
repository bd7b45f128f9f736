using System.Net;
using Mesh.NatLab.Lab;
using Mesh.NatLab.Net;
using Mesh.Traversal.Paths;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;

namespace Mesh.NatLab.Scenarios;

/// <summary>One fault scenario's verdict and the figures behind it.</summary>
public sealed record FaultResult(string Name, string Setup, bool Passed, string Expected, string Observed);

/// <summary>Faults injected into running pairs: what must keep working, and how fast it recovers.</summary>
public static class FaultScenarios
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(50);

    public static IReadOnlyList<FaultResult> RunAll(int seed)
    {
        var scenarios = new Func<int, FaultResult>[]
        {
            NetworkChange,
            seed2 => MappingTimeout(seed2, keepalives: true),
            seed2 => MappingTimeout(seed2, keepalives: false),
            RelayDiesWhileDirect,
            RelayDiesWhileRelayed,
            CoordinatorDownForAMinute,
            LossyLink,
            HandshakeFlood,
            NetmapChurn,
            LaptopMovesToARandomizingNetwork,
        };
        var results = new FaultResult[scenarios.Length];
        Parallel.For(0, scenarios.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i => results[i] = scenarios[i](seed * 100 + i));
        return results;
    }

    public static FaultResult NetworkChange(int seed) =>
        Move(seed, "network change mid-flow", "port-restricted pair; at 15 s agent a moves to another NAT with a new address", Profiles.PortRestricted, new NatBehavior());

    /// <summary>The namespace twin is MeshTraversalTests.ALaptopThatMovesToARandomizingNetworkIsAnsweredAgainSoon.</summary>
    public static FaultResult LaptopMovesToARandomizingNetwork(int seed) =>
        Move(seed, "laptop moves to a randomizing network", "port-restricted laptop and a public server; at 15 s the laptop moves to a symmetric NAT (LTE, CGNAT)",
            Profiles.Public, new NatBehavior { Mapping = NatScope.AddressAndPortDependent, Ports = PortAllocation.Random });

    /// <summary>Agent a (behind a port-restricted NAT) and a peer of <paramref name="peer"/>'s kind trade traffic; at 15 s a moves behind a NAT of <paramref name="destination"/>'s behaviour.</summary>
    private static FaultResult Move(int seed, string name, string description, Profile peer, NatBehavior destination)
    {
        using var world = new World(seed);
        var (a, b, there, back) = Pair(world, Profiles.PortRestricted, peer, new PathOptions());
        world.Scheduler.RunUntil(TimeSpan.FromSeconds(15));
        var (inside, _) = world.AddNat("a-moved", destination, world.Internet, Link.Access);
        var moved = world.Scheduler.Now;
        a.Host.MoveTo(inside, world.NextSiteAddress(), Link.Lan);
        a.NetworkMoved();
        there.Watch(moved);
        back.Watch(moved);
        world.Scheduler.RunUntil(TimeSpan.FromSeconds(40));
        var recovered = Later(there.FirstDeliveryAfter(moved), back.FirstDeliveryAfter(moved)) - moved;
        var path = a.PathTo(b);
        var passed = recovered < TimeSpan.FromSeconds(3) && path?.Path == PathKind.Direct;
        return new FaultResult(name, description, passed, "traffic both ways again within 3 s, direct again later", $"recovered in {Report.Ms(recovered)}; then {Describe(path)}");
    }

    public static FaultResult MappingTimeout(int seed, bool keepalives)
    {
        using var world = new World(seed);
        var nat = Profile(new NatBehavior { MappingTimeout = TimeSpan.FromSeconds(30), Ports = PortAllocation.Sequential }, "port-restricted, 30 s mappings");
        var options = new PathOptions { NatKeepalive = keepalives ? TimeSpan.FromSeconds(25) : TimeSpan.Zero };
        var (a, b, there, back) = Pair(world, nat, nat, options);
        world.Scheduler.RunUntil(TimeSpan.FromSeconds(10));
        var directBefore = a.PathTo(b)?.DirectSince;
        there.Pause();
        back.Pause();
        world.Scheduler.RunUntil(TimeSpan.FromSeconds(130));
        var resumed = world.Scheduler.Now;
        there.Resume();
        back.Resume();
        world.Scheduler.RunUntil(TimeSpan.FromSeconds(160));
        var path = a.PathTo(b);
        var kept = path?.Path == PathKind.Direct && path.DirectSince == directBefore;
        var lost = there.LostBetween(resumed, resumed + TimeSpan.FromSeconds(25)) + back.LostBetween(resumed, resumed + TimeSpan.FromSeconds(25));
        var passed = keepalives ? kept && lost == 0 : lost == 0 && path?.Path == PathKind.Direct;
        return new FaultResult(keepalives ? "30 s NAT mappings, 25 s keepalives" : "30 s NAT mappings, no keepalives",
            "port-restricted pair whose NATs forget mappings after 30 s (new mappings get new ports); traffic stops for 120 s, then resumes",
            passed, keepalives ? "the same direct path survives the silence" : "traffic resumes without loss and is direct (lost paths are found again; the relay session's refreshes also keep an endpoint-independent mapping)",
            $"{(kept ? "same direct path kept" : "direct path lost and found again")}; {lost} packets lost after resuming; now {Describe(path)}");
    }

    public static FaultResult RelayDiesWhileDirect(int seed)
    {
        using var world = new World(seed);
        var (a, b, there, back) = Pair(world, Profiles.PortRestricted, Profiles.PortRestricted, new PathOptions());
        world.Scheduler.RunUntil(TimeSpan.FromSeconds(10));
        var died = world.Scheduler.Now;
        world.Coordinator.StopRelay();
        world.Scheduler.RunUntil(TimeSpan.FromSeconds(30));
        var lost = there.LostBetween(died, TimeSpan.FromSeconds(29)) + back.LostBetween(died, TimeSpan.FromSeconds(29));
        var path = a.PathTo(b);
        return new FaultResult("relay dies while a direct path exists", "port-restricted pair, direct; the coordinator's relay stops at 10 s",
            lost == 0 && path?.Path == PathKind.Direct, "no packet lost, still direct", $"{lost} lost; {Describe(path)}");
    }

    public static FaultResult RelayDiesWhileRelayed(int seed)
    {
        using var world = new World(seed);
        var options = new PathOptions();
        var bounce = Profiles.Public.Build(world, "r", options);
        bounce.Start();
        bounce.ServeRelay();
        var (a, b, there, back) = Pair(world, Profiles.Symmetric, Profiles.Symmetric, options);
        world.Scheduler.RunUntil(TimeSpan.FromSeconds(10));
        var before = a.PathTo(b);
        var died = world.Scheduler.Now;
        world.Coordinator.StopRelay();
        there.Watch(died + TimeSpan.FromSeconds(1));
        world.Scheduler.RunUntil(TimeSpan.FromSeconds(45));
        var path = a.PathTo(b);
        var resumedAt = there.FirstDeliveryAfter(died + TimeSpan.FromSeconds(1));
        var flowing = there.LastDelivered > TimeSpan.FromSeconds(44) && back.LastDelivered > TimeSpan.FromSeconds(44);
        return new FaultResult("relay dies while it carries the only path", "symmetric pair relayed by the coordinator; an agent on a public address also relays; the coordinator's relay stops at 10 s",
            flowing && path?.Path == PathKind.Relay && path.Relay == "r", "traffic moves to the other relay",
            $"before: {Describe(before)}; after: {Describe(path)}; packets flowing again {Report.Ms(resumedAt - died)} after the relay died");
    }

    public static FaultResult CoordinatorDownForAMinute(int seed)
    {
        using var world = new World(seed);
        var options = new PathOptions();
        var bounce = Profiles.Public.Build(world, "r", options);
        bounce.Start();
        bounce.ServeRelay();
        var (a, b, there, back) = Pair(world, Profiles.PortRestricted, Profiles.Cgnat, options);
        var (c, d, over, under) = Pair(world, Profiles.Symmetric, Profiles.Symmetric, options, "c", "d");
        world.Scheduler.RunUntil(TimeSpan.FromSeconds(15));
        // Pin the relayed pair to the agent relay, as it is the one that survives.
        world.Coordinator.StopRelay();
        world.Scheduler.RunUntil(TimeSpan.FromSeconds(40));
        var down = world.Scheduler.Now;
        world.Coordinator.Stop();
        world.Scheduler.RunUntil(down + TimeSpan.FromSeconds(60));
        var lost = there.LostBetween(down, world.Scheduler.Now) + back.LostBetween(down, world.Scheduler.Now)
            + over.LostBetween(down, world.Scheduler.Now) + under.LostBetween(down, world.Scheduler.Now);
        var up = world.Scheduler.Now;
        world.Coordinator.Start();
        var reconnected = world.Scheduler.RunUntil(() => a.Connected && b.Connected && c.Connected && d.Connected, TimeSpan.FromSeconds(30));
        var took = world.Scheduler.Now - up;
        return new FaultResult("coordinator down for a minute", "a direct pair and a pair relayed by an agent relay; the coordinator (with its relay) stops for 60 s",
            lost == 0 && reconnected, "no packet lost in either tunnel; agents reconnect when it returns",
            $"{lost} packets lost while it was down (a-b {there.LostBetween(down, up) + back.LostBetween(down, up)}, c-d {over.LostBetween(down, up) + under.LostBetween(down, up)}); all agents reconnected {Report.Ms(took)} after it returned; {Describe(a.PathTo(b))} and {Describe(c.PathTo(d))}");
    }

    public static FaultResult LossyLink(int seed)
    {
        using var world = new World(seed);
        var (a, b, there, back) = Pair(world, Profiles.PortRestricted, Profiles.PortRestricted, new PathOptions());
        world.Scheduler.RunUntil(TimeSpan.FromSeconds(5));
        a.Host.Link.ExtraLoss = 0.2;
        world.Scheduler.RunUntil(TimeSpan.FromSeconds(65));
        var sent = there.Sent + back.Sent;
        var delivered = (double)(there.Received + back.Received) / Math.Max(1, sent);
        var path = a.PathTo(b);
        return new FaultResult("20% loss on one link", "port-restricted pair; agent a's link drops 20% of packets each way for 60 s",
            path?.Path == PathKind.Direct && delivered > 0.6, "stays direct, delivers what the link lets through",
            $"{Describe(path)}; {delivered:P0} of packets delivered (the link alone allows about 80%)");
    }

    public static FaultResult HandshakeFlood(int seed)
    {
        using var world = new World(seed);
        var options = new PathOptions();
        var b = Profiles.Public.Build(world, "b", options);
        var a = Profiles.PortRestricted.Build(world, "a", options);
        var attacker = new LabHost("attacker", world.Internet, world.NextPublicAddress(), Link.Backbone);
        attacker.Attach();
        var there = new TrafficFlow(world.Scheduler, a, b, Interval, 1);
        var back = new TrafficFlow(world.Scheduler, b, a, Interval, 2);
        b.Start();
        world.Scheduler.RunUntil(TimeSpan.FromSeconds(1));
        var initiation = CaptureInitiation(b.PublicKey, seed);
        var random = new Random(seed);
        var target = new NetEndpoint(b.Host.Address, LabAgent.MainPort);
        long flood = 0;
        world.Scheduler.Every(TimeSpan.FromMilliseconds(1), () =>
        {
            for (var i = 0; i < 5; i++, flood++)
            {
                var spoofed = new NetEndpoint(new IPAddress([(byte)random.Next(1, 224), (byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(1, 255)]), random.Next(1024, 65536));
                attacker.SendSpoofed(spoofed, target, initiation);
            }
            return world.Scheduler.Now < TimeSpan.FromSeconds(30);
        });
        a.Start();
        there.Start();
        back.Start();
        world.Scheduler.RunUntil(TimeSpan.FromSeconds(30));
        var cookies = b.Device.Stats.CookieRepliesSent;
        var flowing = there.Received > 0 && back.Received > 0;
        var first = Later(there.FirstDelivered, back.FirstDelivered) - Later(a.OnlineAt, b.OnlineAt);
        return new FaultResult("handshake flood from spoofed sources", "5,000 initiations per second with valid mac1 from random spoofed addresses at agent b (public) while agent a connects",
            flowing && cookies > 0, "the real peer still connects (cookie replies answer the flood)",
            $"{flood:N0} spoofed initiations, {cookies:N0} cookie replies; real pair's first packet after {Report.Ms(first)}, {there.Received + back.Received} packets delivered");
    }

    /// <summary>A well-formed initiation to <paramref name="victim"/> (valid mac1) from a throwaway device, to replay from forged addresses.</summary>
    private static byte[] CaptureInitiation(PublicKey victim, int seed)
    {
        var sink = new CaptureSink();
        var entropy = new SeededEntropy(seed);
        var device = new Device(sink, new ManualClock(), entropy);
        device.SetPrivateKey(PrivateKey.Generate(entropy));
        var peer = device.GetOrAddPeer(victim);
        peer.Endpoint = NetEndpoint.Parse("192.0.2.1:1");
        device.SetAllowedIps(peer, [IPNetwork.Parse("10.0.0.0/8")], replace: true);
        var packet = new byte[28];
        packet[0] = 0x45;
        packet[3] = 28;
        packet[9] = 17;
        IPAddress.Parse("10.0.0.1").TryWriteBytes(packet.AsSpan(16), out _);
        device.SendPacket(packet);
        return sink.Initiation ?? throw new InvalidOperationException("the device sent no initiation");
    }

    private sealed class CaptureSink : IPacketSink
    {
        public byte[]? Initiation { get; private set; }

        public void SendDatagram(ReadOnlySpan<byte> datagram, NetEndpoint destination) => Initiation ??= datagram.ToArray();

        public void WriteTunnel(ReadOnlySpan<byte> packet)
        {
        }
    }

    /// <summary>
    /// 1,000 netmap deltas about other nodes (500 join, then each is renamed), 30 ms apart, reach a direct pair
    /// that is exchanging numbered packets: none may be lost, and neither device may drop one for want of a route.
    /// </summary>
    public static FaultResult NetmapChurn(int seed)
    {
        using var world = new World(seed);
        var (a, b, there, back) = Pair(world, Profiles.PortRestricted, Profiles.PortRestricted, new PathOptions());
        world.Scheduler.RunUntil(TimeSpan.FromSeconds(10));
        var start = world.Scheduler.Now;
        var noRoute = a.Device.Stats.Dropped(DropReason.NoRoute) + b.Device.Stats.Dropped(DropReason.NoRoute);
        var serial = a.Node.View.Serial;
        const int Others = 500;
        for (var i = 0; i < Others * 2; i++)
        {
            var n = i;
            world.Scheduler.After(TimeSpan.FromMilliseconds(30 * i), () =>
            {
                if (n < Others) world.Coordinator.RegisterOther($"other{n}");
                else world.Coordinator.Rename($"other{n - Others}", $"renamed{n - Others}");
            });
        }
        world.Scheduler.RunUntil(start + TimeSpan.FromSeconds(40));
        var deltas = a.Node.View.DeltasApplied;
        var lost = there.LostBetween(start, start + TimeSpan.FromSeconds(39)) + back.LostBetween(start, start + TimeSpan.FromSeconds(39));
        var dropped = a.Device.Stats.Dropped(DropReason.NoRoute) + b.Device.Stats.Dropped(DropReason.NoRoute) - noRoute;
        var path = a.PathTo(b);
        var peers = a.Node.View.Peers.Count;
        return new FaultResult("netmap churn", "port-restricted pair, direct; from 10 s, 500 other nodes join and are then renamed, one change every 30 ms (1,000 changes; the coordinator sends them in fewer deltas at its steady rate)",
            lost == 0 && dropped == 0 && peers == Others + 1 && path?.Path == PathKind.Direct, "no packet lost or dropped for want of a route, still direct",
            $"{a.Node.View.Serial - serial} serials, {deltas} deltas applied by a, {peers} peers; {lost} packets lost, {dropped} dropped as no route; {Describe(path)}");
    }

    private static (LabAgent A, LabAgent B, TrafficFlow There, TrafficFlow Back) Pair(World world, Profile a, Profile b, PathOptions options, string nameA = "a", string nameB = "b")
    {
        var left = a.Build(world, nameA, options);
        var right = b.Build(world, nameB, options);
        var there = new TrafficFlow(world.Scheduler, left, right, Interval, 1);
        var back = new TrafficFlow(world.Scheduler, right, left, Interval, 2);
        left.Start();
        right.Start();
        there.Start();
        back.Start();
        return (left, right, there, back);
    }

    private static Profile Profile(NatBehavior behavior, string description) => new(description, description, (world, name, options) =>
    {
        var (inside, _) = world.AddNat($"{name}-nat", behavior, world.Internet, Link.Access);
        return world.AddAgent(name, inside, world.NextSiteAddress(), Link.Lan, options);
    });

    private static string Describe(PeerPathStatus? status) => status?.Path switch
    {
        PathKind.Direct => $"direct ({status.Technique.Name()})",
        PathKind.Relay => $"relayed by {status.Relay}",
        _ => "no path",
    };

    private static TimeSpan? Later(TimeSpan? x, TimeSpan? y) => x is null || y is null ? null : x > y ? x : y;
}
