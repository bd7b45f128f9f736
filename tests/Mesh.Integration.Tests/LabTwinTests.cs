using Mesh.NatLab.Scenarios;
using Xunit.Abstractions;

namespace Mesh.Integration.Tests;

/// <summary>
/// The NAT lab's cells on real Linux networks: each row builds both sides of a lab cell out of network
/// namespaces, iptables, nftables and miniupnpd, and asserts the outcome the lab expects of that cell
/// (<see cref="PairScenario.Expected"/>). simulations/RESULTS.md lists the twins and what they measured.
/// </summary>
[Collection("mesh")]
public sealed class LabTwinTests(ITestOutputHelper output) : IDisposable
{
    private readonly MeshWorld _world = new();

    public void Dispose()
    {
        foreach (var agent in _world.Agents) output.WriteLine(agent.TryStatus(out var status) ? $"{agent.Name}: {status}" : $"{agent.Name}: no status");
        _world.Dispose();
    }

    /// <summary>The twins the lab lists (<see cref="Twins.All"/>): a lab profile on each side, and the real-network variant where a profile has two.</summary>
    public static TheoryData<string, string, string> Cells()
    {
        var cells = new TheoryData<string, string, string>();
        foreach (var twin in Twins.All) cells.Add(twin.A.Name, twin.B.Name, twin.Variant);
        return cells;
    }

    [Theory]
    [MemberData(nameof(Cells))]
    public void TheRealNetworkAgreesWithTheLabCell(string a, string b, string variant)
    {
        var expected = PairScenario.Expected(Profile(a), Profile(b), hardNatTechnique: true);
        var left = Build(a, "a", variant);
        var right = Build(b, "b", variant);
        Wait.Until(() => left.Connected && right.Connected, TimeSpan.FromSeconds(60), "both agents are online");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Wait.Until(() => left.Ping(right.MeshAddress), TimeSpan.FromSeconds(30), "a pings b", TimeSpan.Zero);
        var first = clock.Elapsed;
        TimeSpan? direct = null;
        if (expected == Outcome.Direct)
        {
            Wait.Until(() => left.PathTo("b") == "direct" && right.PathTo("a") == "direct", TimeSpan.FromSeconds(60), "the pair goes direct", TimeSpan.FromMilliseconds(250));
            direct = clock.Elapsed;
        }
        else
        {
            // Longer than the lab's direct cells take many times over: a relayed cell must still be relayed then.
            Thread.Sleep(TimeSpan.FromSeconds(15));
        }
        var seen = left.Peer("b")!.Value;
        var path = seen.GetProperty("path").GetString();
        var endpoint = seen.GetProperty("endpoint").GetString();
        var how = path == "direct" ? $"direct ({seen.GetProperty("technique").GetString()}) to {endpoint}" : $"relayed over {seen.GetProperty("relayTransport").GetString()}";
        output.WriteLine($"twin {a} x {b}{(variant.Length > 0 ? $" ({variant})" : "")}: {how}; first packet {first.TotalMilliseconds:0} ms, direct {(direct is { } d ? $"{d.TotalMilliseconds:0} ms" : "-")}; lab expects {expected.ToString().ToLowerInvariant()}");
        Assert.Equal(expected == Outcome.Direct ? "direct" : "relay", path);
        // Two IPv6 homes meet over IPv6: their IPv4 NATs randomize ports.
        if (a == "ipv6" && b == "ipv6") Assert.StartsWith("[2001:db8:", endpoint);
        // A cone takes the randomizing side's new port at once, as the lab's cone cells do: no birthday search.
        if (a is "full-cone" or "restricted-cone") Assert.Equal("peer-reflexive", seen.GetProperty("technique").GetString());
        Assert.True(left.Ping(right.MeshAddress, "2"), "traffic flows on the path the pair ended on");
    }

    private static Profile Profile(string name) => Profiles.All.Single(p => p.Name == name);

    private MeshAgentProcess Build(string profile, string role, string variant) => profile switch
    {
        "public" => _world.AddPublicAgent(role),
        "full-cone" => ConeHome(role, addressRestricted: false),
        "restricted-cone" => ConeHome(role, addressRestricted: true),
        "port-restricted" => _world.AddAgent(_world.AddSite("h" + role, Nat.PortKeeping, inputFirewall: variant == "input firewall"), role),
        "symmetric" => _world.AddAgent(_world.AddSite("h" + role, Nat.Randomizing), role),
        "portmap" => PortMappingHome(role),
        "ipv6" => RoutedIPv6Home(role),
        "cgnat" => _world.AddAgent(_world.AddSite("h" + role, Nat.PortKeeping, behindCarrierNat: true), role),
        "firewall" => _world.AddAgent(_world.AddSite("h" + role, Nat.None), role),
        "udp-blocked" => UdpBlockedHome(role),
        _ => throw new ArgumentException($"no namespace twin for the lab profile {profile}"),
    };

    private MeshAgentProcess ConeHome(string role, bool addressRestricted)
    {
        var site = _world.AddSite("h" + role, Nat.PortKeeping, inputFirewall: true);
        _world.Cone(site, addressRestricted);
        return _world.AddAgent(site, role);
    }

    private MeshAgentProcess PortMappingHome(string role)
    {
        var site = _world.AddSite("h" + role, Nat.Randomizing, wanPrefix: "172.32");
        _world.StartMiniupnpd(site);
        return _world.AddAgent(site, role);
    }

    private MeshAgentProcess RoutedIPv6Home(string role)
    {
        var site = _world.AddSite("h" + role, Nat.Randomizing);
        _world.RoutedIPv6(site);
        return _world.AddAgent(site, role);
    }

    private MeshAgentProcess UdpBlockedHome(string role)
    {
        var site = _world.AddSite("h" + role, Nat.PortKeeping);
        _world.BlockUdp(site);
        return _world.AddAgent(site, role);
    }
}
