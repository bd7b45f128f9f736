using Xunit.Abstractions;

namespace Mesh.Integration.Tests;

/// <summary>Agents in mesh mode behind real Linux NATs: which pairs go direct, which are relayed, and how paths change.</summary>
[Collection("mesh")]
public sealed class MeshTraversalTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Online = TimeSpan.FromSeconds(60);
    private readonly MeshWorld _world = new();

    public void Dispose()
    {
        WriteViews(_world);
        _world.Dispose();
    }

    /// <summary>Every agent's view goes to the test output, so a failure shows what each side saw.</summary>
    private void WriteViews(MeshWorld world)
    {
        foreach (var agent in world.Agents)
        {
            output.WriteLine(agent.TryStatus(out var status) ? $"{agent.Name}: {status}" : $"{agent.Name}: no status");
            output.WriteLine($"{agent.Name}'s last log lines:\n{agent.Log.Last(30)}");
        }
        foreach (var log in world.CoordinatorLogs(40)) output.WriteLine(log);
    }

    /// <summary>
    /// The TUN offloads on a real kernel: TCP over the mesh's IPv6 addresses (TSO6 split on one side, coalesced
    /// on the other) arrives hashed intact both ways, and UDP the application sends with GSO (USO super-packets)
    /// arrives whole, datagram by datagram.
    /// </summary>
    [Fact]
    public void OffloadedTcpOverIPv6AndSegmentedUdpArriveIntact()
    {
        var a = _world.AddAgent(_world.AddSite("ha", Nat.PortKeeping), "a");
        var b = _world.AddAgent(_world.AddSite("hb", Nat.PortKeeping), "b");
        Connect(a, b);
        Assert.Equal("tso+uso", a.Status().GetProperty("dataPath").GetProperty("tunOffloads").GetString());
        string V6(MeshAgentProcess agent) => agent.Status().GetProperty("addresses").EnumerateArray().Select(x => x.GetString()!).First(x => x.Contains(':')).Split('/')[0];
        Transfer.AssertIntact(_world.Lab, b.Namespace, V6(b), a.Namespace, 20_000_000);
        Transfer.AssertIntact(_world.Lab, a.Namespace, V6(a), b.Namespace, 20_000_000);
        var (intact, corrupt) = Transfer.SegmentedUdp(_world.Lab, b.Namespace, b.MeshAddress, a.Namespace, 1600, 1200);
        output.WriteLine($"UDP with GSO through the tunnel: {intact} of 1600 datagrams intact, {corrupt} not");
        Assert.Equal(0, corrupt);
        Assert.True(intact >= 1520, $"{intact} of 1600 datagrams arrived");
    }

    /// <summary>
    /// Two randomizing IPv4 NATs cannot be punched, but the same homes' routed IPv6 behind stateful firewalls can:
    /// the pair goes direct over IPv6.
    /// </summary>
    [Fact]
    public void RandomizingNatsWithRoutedIPv6GoDirectOverIPv6()
    {
        var homeA = _world.AddSite("ha", Nat.Randomizing);
        var homeB = _world.AddSite("hb", Nat.Randomizing);
        _world.RoutedIPv6(homeA);
        _world.RoutedIPv6(homeB);
        var a = _world.AddAgent(homeA, "a");
        var b = _world.AddAgent(homeB, "b");
        var (first, direct) = Connect(a, b);
        var endpoint = a.Peer("b")!.Value.GetProperty("endpoint").GetString()!;
        output.WriteLine($"randomizing NATs, routed IPv6: direct over {endpoint} by {a.Peer("b")!.Value.GetProperty("technique").GetString()}; first packet {first.TotalMilliseconds:0} ms, direct {direct.TotalMilliseconds:0} ms after both online");
        Assert.StartsWith("[2001:db8:2::", endpoint);
        Assert.StartsWith("[2001:db8:1::", b.Peer("a")!.Value.GetProperty("endpoint").GetString());
        Transfer.AssertIntact(_world.Lab, b.Namespace, b.MeshAddress, a.Namespace, 2_000_000);
    }

    /// <summary>
    /// Two randomizing NATs defeat hole punching, but a router that maps ports on request does not: with Debian's
    /// miniupnpd on one router, that side's agent maps its port by PCP and the pair goes direct through it
    /// (technique "portmap"). `mesh-agent down` deletes the mapping at the router, the agent maps it again when
    /// it comes back up, and when the router restarts without miniupnpd the pair goes back to the relay and says the mapping is gone.
    /// </summary>
    [Fact]
    public void RandomizingNatsGoDirectThroughAPortMappingRouter()
    {
        var homeA = _world.AddSite("ha", Nat.Randomizing, wanPrefix: "172.32");
        var homeB = _world.AddSite("hb", Nat.Randomizing);
        var miniupnpd = _world.StartMiniupnpd(homeA);
        var a = _world.AddAgent(homeA, "a");
        var b = _world.AddAgent(homeB, "b");
        var (first, direct) = Connect(a, b);
        var mapping = a.Status().GetProperty("portMapping");
        output.WriteLine($"randomizing NATs, miniupnpd on one router: first packet {first.TotalMilliseconds:0} ms, direct {direct.TotalMilliseconds:0} ms after both online; a's mapping {mapping}");
        Assert.Equal("pcp", mapping.GetProperty("protocol").GetString());
        Assert.Equal($"{homeA.PublicAddress}:41641", mapping.GetProperty("external").GetString());
        Assert.Equal("portmap", b.Peer("a")!.Value.GetProperty("technique").GetString());
        Assert.Equal($"{homeA.PublicAddress}:41641", b.Peer("a")!.Value.GetProperty("endpoint").GetString());
        Assert.Contains($"dnat ip to {a.Underlay}:41641", _world.PortMappings(homeA));
        Transfer.AssertIntact(_world.Lab, b.Namespace, b.MeshAddress, a.Namespace, 2_000_000);

        NetworkLab.Run("dotnet", Binaries.Agent, "down", "--state-dir", a.StateDir);
        Wait.Until(() => _world.PortMappings(homeA).Length == 0, TimeSpan.FromSeconds(10), "`mesh-agent down` deletes the mapping at the router");

        a = _world.Restart(a);
        var (first2, direct2) = Connect(a, b);
        output.WriteLine($"a up again: first packet {first2.TotalMilliseconds:0} ms, direct {direct2.TotalMilliseconds:0} ms");
        Assert.Equal("portmap", b.Peer("a")!.Value.GetProperty("technique").GetString());

        // The router restarts without its port mapping daemon. miniupnpd leaves its rules in place when it stops;
        // a restarted router has neither them nor the connection tracking that would carry the flow on.
        NetworkLab.Run("kill", "-TERM", miniupnpd.Id.ToString());
        Assert.True(miniupnpd.WaitForExit(10_000), "miniupnpd stops");
        foreach (var chain in new[] { "prerouting_miniupnpd", "miniupnpd" }) _world.Lab.Exec(homeA.Router, "nft", "flush", "chain", "inet", "filter", chain);
        _world.Lab.Exec(homeA.Router, "conntrack", "-F");
        var relayed = Wait.Until(() => a.PathTo("b") == "relay" && b.PathTo("a") == "relay", TimeSpan.FromSeconds(30), "the pair is back on the relay", TimeSpan.FromMilliseconds(250));
        var after = a.Status().GetProperty("portMapping");
        output.WriteLine($"miniupnpd gone: relayed after {relayed.TotalMilliseconds:0} ms; a's mapping {after}; b's reason: {b.Peer("a")!.Value.GetProperty("reason").GetString()}");
        Wait.Until(() => a.Ping(b.MeshAddress), TimeSpan.FromSeconds(10), "a pings b over the relay");
        Wait.Until(() => a.Status().GetProperty("portMapping").GetProperty("state").GetString() == "unavailable", TimeSpan.FromSeconds(15), "a reports the mapping gone");
    }

    /// <summary>
    /// A router that speaks only UPnP-IGD: PCP and NAT-PMP go unanswered, SSDP finds the gateway, SOAP maps the
    /// port, and the pair of randomizing NATs goes direct through it; `mesh-agent down` deletes the mapping.
    /// </summary>
    [Fact]
    public void RandomizingNatsGoDirectThroughAUpnpOnlyRouter()
    {
        var homeA = _world.AddSite("ha", Nat.Randomizing, wanPrefix: "172.32");
        var homeB = _world.AddSite("hb", Nat.Randomizing);
        _world.StartMiniupnpd(homeA, pcp: false);
        var a = _world.AddAgent(homeA, "a");
        var b = _world.AddAgent(homeB, "b");
        var (first, direct) = Connect(a, b);
        var mapping = a.Status().GetProperty("portMapping");
        output.WriteLine($"randomizing NATs, UPnP-only router: first packet {first.TotalMilliseconds:0} ms, direct {direct.TotalMilliseconds:0} ms after both online; a's mapping {mapping}");
        Assert.Equal("upnp", mapping.GetProperty("protocol").GetString());
        Assert.Equal("portmap", b.Peer("a")!.Value.GetProperty("technique").GetString());
        Assert.Contains($"dnat ip to {a.Underlay}:41641", _world.PortMappings(homeA));
        NetworkLab.Run("dotnet", Binaries.Agent, "down", "--state-dir", a.StateDir);
        Wait.Until(() => _world.PortMappings(homeA).Length == 0, TimeSpan.FromSeconds(10), "`mesh-agent down` deletes the UPnP mapping at the router");
    }

    /// <summary>
    /// Two port-keeping routers side by side on one L2 segment, with no input firewall: each is the other's next
    /// hop, so a TTL-limited opening packet cannot stop short of the peer's router (see simulations/RESULTS.md).
    /// Whatever path results, the pair carries data and says why it is on that path.
    /// </summary>
    [Fact]
    public void AdjacentRoutersWithoutAnInputFirewallCarryDataAndSayWhy()
    {
        var a = _world.AddAgent(_world.AddSite("ha", Nat.PortKeeping, sharedSegment: true), "a");
        var b = _world.AddAgent(_world.AddSite("hb", Nat.PortKeeping, sharedSegment: true), "b");
        var (first, _) = Connect(a, b, expectDirect: false);
        // Give a direct path the time the port-keeping pair on separate links needs many times over, then see.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30) && !(a.PathTo("b") == "direct" && b.PathTo("a") == "direct")) Thread.Sleep(250);
        Assert.True(a.PathTo("b") is "direct" or "relay" && b.PathTo("a") is "direct" or "relay", "both report a path");
        var seen = a.Peer("b")!.Value;
        var path = seen.GetProperty("path").GetString();
        var why = path == "direct" ? $"direct by {seen.GetProperty("technique").GetString()}" : $"relayed: {seen.GetProperty("reason").GetString()}";
        output.WriteLine($"adjacent routers, no input firewall: first packet {first.TotalMilliseconds:0} ms; {why}");
        if (path == "relay") Assert.False(string.IsNullOrEmpty(seen.GetProperty("reason").GetString()));
        Transfer.AssertIntact(_world.Lab, b.Namespace, b.MeshAddress, a.Namespace, 2_000_000);
    }

    /// <summary>The same adjacent routers, with miniupnpd on one of them: the mapped port gets the pair direct.</summary>
    [Fact]
    public void AdjacentRoutersWithPortMappingOnOneGoDirect()
    {
        var homeA = _world.AddSite("ha", Nat.PortKeeping, sharedSegment: true);
        _world.StartMiniupnpd(homeA);
        var a = _world.AddAgent(homeA, "a");
        var b = _world.AddAgent(_world.AddSite("hb", Nat.PortKeeping, sharedSegment: true), "b");
        var (first, direct) = Connect(a, b);
        output.WriteLine($"adjacent routers, miniupnpd on one: first packet {first.TotalMilliseconds:0} ms, direct {direct.TotalMilliseconds:0} ms; b reaches a by {b.Peer("a")!.Value.GetProperty("technique").GetString()}");
        Assert.Equal("portmap", b.Peer("a")!.Value.GetProperty("technique").GetString());
        Transfer.AssertIntact(_world.Lab, b.Namespace, b.MeshAddress, a.Namespace, 2_000_000);
    }

    [Fact]
    public void PortKeepingNatsGoDirect()
    {
        var a = _world.AddAgent(_world.AddSite("ha", Nat.PortKeeping), "a");
        var b = _world.AddAgent(_world.AddSite("hb", Nat.PortKeeping), "b");
        var (first, direct) = Connect(a, b);
        output.WriteLine($"port-keeping pair: first packet {first.TotalMilliseconds:0} ms, direct {direct.TotalMilliseconds:0} ms after both online");
        Assert.Equal("direct", a.PathTo("b"));
        Assert.Equal("direct", b.PathTo("a"));
        Assert.True(b.Ping(a.MeshAddress));
    }

    [Fact]
    public void RandomizingNatsAreRelayedAndCarryData()
    {
        var a = _world.AddAgent(_world.AddSite("ha", Nat.Randomizing), "a");
        var b = _world.AddAgent(_world.AddSite("hb", Nat.Randomizing), "b");
        var (first, _) = Connect(a, b, expectDirect: false);
        Wait.Until(() => a.PathTo("b") == "relay" && b.PathTo("a") == "relay", TimeSpan.FromSeconds(15), "both report the relay");
        var reason = a.Peer("b")!.Value.GetProperty("reason").GetString();
        output.WriteLine($"randomizing pair: first packet {first.TotalMilliseconds:0} ms after both online, relayed: {reason}");
        Assert.Contains("random source ports", reason);
        Transfer.AssertIntact(_world.Lab, b.Namespace, b.MeshAddress, a.Namespace, 10_000_000);
        Transfer.AssertIntact(_world.Lab, a.Namespace, a.MeshAddress, b.Namespace, 10_000_000);
        Assert.Equal("relay", a.PathTo("b"));
    }

    [Fact]
    public void RandomizingAndPortKeepingGoDirectThroughTheHardNatSearch()
    {
        var a = _world.AddAgent(_world.AddSite("ha", Nat.Randomizing), "a");
        var b = _world.AddAgent(_world.AddSite("hb", Nat.PortKeeping), "b");
        var (first, direct) = Connect(a, b);
        var technique = a.Peer("b")!.Value.GetProperty("technique").GetString();
        output.WriteLine($"randomizing + port-keeping: direct by {technique}; first packet {first.TotalMilliseconds:0} ms, direct {direct.TotalMilliseconds:0} ms after both online");
        Assert.Equal("birthday", technique);
        Assert.Equal("birthday", b.Peer("a")!.Value.GetProperty("technique").GetString());
        Assert.True(b.Ping(a.MeshAddress));
    }

    [Fact]
    public void UdpBlockedHomeReachesAPeerOverTheCoordinatorsTcpRelay()
    {
        var blocked = _world.AddSite("ha", Nat.PortKeeping);
        _world.BlockUdp(blocked);
        var a = _world.AddAgent(blocked, "a");
        var b = _world.AddAgent(_world.AddSite("hb", Nat.PortKeeping), "b");
        var (first, _) = Connect(a, b, expectDirect: false);
        AssertRelayedOverTcp(a, b, "HTTP/2 over TLS");
        output.WriteLine($"UDP-blocked home: first packet {first.TotalMilliseconds:0} ms after both online, a sees: {a.Peer("b")!.Value.GetProperty("reason").GetString()}");
        Transfer.AssertIntact(_world.Lab, b.Namespace, b.MeshAddress, a.Namespace, 2_000_000);
        Transfer.AssertIntact(_world.Lab, a.Namespace, a.MeshAddress, b.Namespace, 2_000_000);
    }

    [Fact]
    public void UdpBlockedHomeBehindAnHttpProxyReachesAPeer()
    {
        var office = _world.AddSite("ha", Nat.PortKeeping);
        var proxy = _world.ProxyOnly(office);
        var a = _world.AddAgent(office, "a", new Dictionary<string, string> { ["HTTPS_PROXY"] = proxy });
        var b = _world.AddAgent(_world.AddSite("hb", Nat.PortKeeping), "b");
        var (first, _) = Connect(a, b, expectDirect: false);
        AssertRelayedOverTcp(a, b, $"HTTP/2 over TLS, through proxy {new Uri(proxy).Authority}");
        output.WriteLine($"proxy-only office: first packet {first.TotalMilliseconds:0} ms after both online, a sees: {a.Peer("b")!.Value.GetProperty("reason").GetString()}");
        Transfer.AssertIntact(_world.Lab, b.Namespace, b.MeshAddress, a.Namespace, 2_000_000);
        Transfer.AssertIntact(_world.Lab, a.Namespace, a.MeshAddress, b.Namespace, 2_000_000);
    }

    /// <summary>The UDP-blocked side relays over TCP and says why; the other side reaches it through the same relay over UDP.</summary>
    private static void AssertRelayedOverTcp(MeshAgentProcess blocked, MeshAgentProcess other, string transport)
    {
        Wait.Until(() => blocked.PathTo(other.Name) == "relay" && other.PathTo(blocked.Name) == "relay", TimeSpan.FromSeconds(15), "both report the relay");
        var seen = blocked.Peer(other.Name)!.Value;
        Assert.Equal("tcp", seen.GetProperty("relayTransport").GetString());
        Assert.Equal("coordinator", seen.GetProperty("relay").GetString());
        Assert.Contains("UDP is blocked on this network", seen.GetProperty("reason").GetString());
        var stream = blocked.Status().GetProperty("relayStreams").EnumerateArray().Single();
        Assert.Equal("connected", stream.GetProperty("state").GetString());
        Assert.Equal(transport, stream.GetProperty("transport").GetString());
        var back = other.Peer(blocked.Name)!.Value;
        Assert.Equal("udp", back.GetProperty("relayTransport").GetString());
        Assert.Contains("UDP is blocked on the peer's network", back.GetProperty("reason").GetString());
    }

    [Fact]
    public void AgentsOnOneLanUseTheLanPath()
    {
        var home = _world.AddSite("h", Nat.PortKeeping);
        var a = _world.AddAgent(home, "a");
        var b = _world.AddAgent(home, "b");
        var (first, direct) = Connect(a, b);
        output.WriteLine($"same LAN: first packet {first.TotalMilliseconds:0} ms, direct {direct.TotalMilliseconds:0} ms after both online");
        var peer = a.Peer("b")!.Value;
        Assert.Equal("local", peer.GetProperty("technique").GetString());
        Assert.Equal($"{b.Underlay}:41641", peer.GetProperty("endpoint").GetString());
    }

    [Fact]
    public void BlockedDirectPathFallsBackToTheRelayAndReturns()
    {
        var siteA = _world.AddSite("ha", Nat.PortKeeping);
        var siteB = _world.AddSite("hb", Nat.PortKeeping);
        var a = _world.AddAgent(siteA, "a");
        var b = _world.AddAgent(siteB, "b");
        Connect(a, b);
        string[] rule = ["-s", siteB.PublicAddress, "-p", "udp", "-j", "DROP"];
        _world.Lab.Exec(siteA.Router, ["iptables", "-I", "FORWARD", .. rule]);
        var target = b.MeshAddress;
        var fallback = Wait.Until(() => a.PathTo("b") == "relay" && a.Ping(target, "0.2"), TimeSpan.FromSeconds(10), "a falls back to the relay", TimeSpan.Zero);
        output.WriteLine($"direct path blocked: relayed and answering after {fallback.TotalMilliseconds:0} ms (goal: 5 s)");
        _world.Lab.Exec(siteA.Router, ["iptables", "-D", "FORWARD", .. rule]);
        var back = Wait.Until(() => a.PathTo("b") == "direct" && b.PathTo("a") == "direct", TimeSpan.FromSeconds(90), "the pair goes direct again");
        output.WriteLine($"rule removed: direct again after {back.TotalMilliseconds:0} ms");
        Assert.True(a.Ping(target));
    }

    [Fact]
    public void UnderlayAddressChangeRecoversWithinThreeSeconds()
    {
        var a = _world.AddAgent(_world.AddSite("ha", Nat.PortKeeping), "a");
        var b = _world.AddAgent(_world.AddSite("hb", Nat.PortKeeping), "b");
        var elsewhere = _world.AddSite("hc", Nat.PortKeeping);
        Connect(a, b);
        var target = a.MeshAddress;
        // The laptop leaves one home network for another: new address, new NAT, new public address.
        var moved = MoveTo(a, elsewhere);
        var recovered = Wait.Until(() => b.Ping(target, "0.2"), TimeSpan.FromSeconds(10), "b reaches a at its new address", TimeSpan.Zero);
        output.WriteLine($"underlay moved to {moved}: b reaches a again after {recovered.TotalMilliseconds:0} ms (goal: 3 s); path {b.PathTo("a")}");
        var direct = TryWait(() => a.PathTo("b") == "direct" && b.PathTo("a") == "direct", TimeSpan.FromSeconds(20));
        output.WriteLine(direct is { } took ? $"direct again after {took.TotalMilliseconds:0} ms" : $"not direct again within 20 s: {a.Peer("b")?.GetProperty("reason")}");
    }

    /// <summary>
    /// The agent's link goes down and it comes up on another site's LAN, as a laptop does that leaves home Wi-Fi for a
    /// phone's hotspot: the new link first carries frames (both ends up, the bridge forwarding), then gets its address
    /// and default route at once, as a DHCP lease gives them. The move is timed from the lease.
    /// </summary>
    private string MoveTo(MeshAgentProcess agent, Site site)
    {
        var moved = $"192.168.{site.Index}.50";
        _world.Lab.Exec(agent.Namespace, "ip", "link", "del", agent.Device);
        var (device, port) = _world.Lab.LinkToBridge(agent.Namespace, null, site.Router, "lan");
        Wait.Until(() => _world.Lab.Exec(agent.Namespace, "cat", $"/sys/class/net/{device}/carrier").Trim() == "1"
            && _world.Lab.Exec(site.Router, "bridge", "link", "show", "dev", port).Contains("state forwarding"), TimeSpan.FromSeconds(10), "the new link carries frames");
        _world.Lab.Exec(agent.Namespace, "ip", "addr", "add", $"{moved}/24", "dev", device);
        _world.Lab.Exec(agent.Namespace, "ip", "route", "add", "default", "via", $"192.168.{site.Index}.1");
        agent.Underlay = moved;
        return moved;
    }

    /// <summary>
    /// The first guide's roaming case on real NATs: a laptop behind a home NAT talks to a public server, then moves
    /// to a port-randomizing network (LTE, CGNAT). Its pings to the server must be answered again soon after the move.
    /// </summary>
    [Fact]
    public void ALaptopThatMovesToARandomizingNetworkIsAnsweredAgainSoon()
    {
        var server = _world.AddPublicAgent("s");
        var laptop = _world.AddAgent(_world.AddSite("ha", Nat.PortKeeping, inputFirewall: true), "a");
        var lte = _world.AddSite("hl", Nat.Randomizing, inputFirewall: true);
        Connect(laptop, server);
        var target = server.MeshAddress;
        Assert.True(laptop.Ping(target));
        MoveTo(laptop, lte);
        var answered = Wait.Until(() => laptop.Ping(target, "0.2"), TimeSpan.FromSeconds(10), "the laptop's pings are answered again", TimeSpan.Zero);
        output.WriteLine($"moved to the randomizing network: answered again after {answered.TotalMilliseconds:0} ms (goal: 1 s); path {laptop.PathTo("s")}");
        var direct = TryWait(() => laptop.PathTo("s") == "direct" && server.PathTo("a") == "direct", TimeSpan.FromSeconds(20));
        output.WriteLine(direct is { } took ? $"direct again after {took.TotalMilliseconds:0} ms" : $"not direct again within 20 s: {laptop.Peer("s")?.GetProperty("reason")}");
        Assert.NotNull(direct);
    }

    /// <summary>
    /// A laptop on Wi-Fi and LTE at once: its Wi-Fi fades and the default route moves to LTE (a port-randomizing
    /// network) while both links keep their addresses. No address changed, but the way out did.
    /// </summary>
    [Fact]
    public void ALaptopWhoseDefaultRouteMovesToAnotherLinkIsAnsweredAgainSoon()
    {
        var server = _world.AddPublicAgent("s");
        var home = _world.AddSite("ha", Nat.PortKeeping, inputFirewall: true);
        var laptop = _world.AddAgent(home, "a");
        var lte = _world.AddSite("hl", Nat.Randomizing, inputFirewall: true);
        _world.Lab.LinkToBridge(laptop.Namespace, $"192.168.{lte.Index}.50/24", lte.Router, "lan");
        Connect(laptop, server);
        var target = server.MeshAddress;
        Assert.True(laptop.Ping(target));
        _world.Lab.Exec(laptop.Namespace, "ip", "route", "replace", "default", "via", $"192.168.{lte.Index}.1");
        var answered = Wait.Until(() => laptop.Ping(target, "0.2"), TimeSpan.FromSeconds(10), "the laptop's pings are answered again", TimeSpan.Zero);
        output.WriteLine($"default route moved to the randomizing network: answered again after {answered.TotalMilliseconds:0} ms (goal: 1 s); path {laptop.PathTo("s")}");
        Assert.Contains("out through 192.168." + lte.Index + ".50", laptop.Log.ToString());
        var direct = TryWait(() => laptop.PathTo("s") == "direct" && server.PathTo("a") == "direct", TimeSpan.FromSeconds(20));
        output.WriteLine(direct is { } took ? $"direct again after {took.TotalMilliseconds:0} ms" : $"not direct again within 20 s: {laptop.Peer("s")?.GetProperty("reason")}");
        Assert.NotNull(direct);
    }

    [Fact]
    public void TunnelsOutliveTheCoordinatorAndAgentsReconnect()
    {
        using var world = new MeshWorld(coordinatorRelay: false);
        using var views = new Finally(() => WriteViews(world));
        world.AddPublicAgent("r", "--relay");
        // Routers with the usual input firewall: what is tested here is the outage, not the conntrack race.
        var a = world.AddAgent(world.AddSite("ha", Nat.PortKeeping, inputFirewall: true), "a");
        var b = world.AddAgent(world.AddSite("hb", Nat.PortKeeping, inputFirewall: true), "b");
        var c = world.AddAgent(world.AddSite("hc", Nat.Randomizing, inputFirewall: true), "c");
        var d = world.AddAgent(world.AddSite("hd", Nat.Randomizing, inputFirewall: true), "d");
        Connect(a, b);
        Connect(c, d, expectDirect: false);
        Wait.Until(() => c.PathTo("d") == "relay", TimeSpan.FromSeconds(15), "c reaches d through the agent relay");
        Assert.Equal("r", c.Peer("d")!.Value.GetProperty("relay").GetString());
        var (ab, cd) = (b.MeshAddress, d.MeshAddress);

        world.KillCoordinator();
        Wait.Until(() => !a.Connected && !c.Connected, TimeSpan.FromSeconds(30), "the agents notice the coordinator is gone");
        for (var i = 0; i < 5; i++)
        {
            Assert.True(a.Ping(ab), "direct tunnel while the coordinator is down");
            Assert.True(c.Ping(cd), "relayed tunnel (agent relay) while the coordinator is down");
            Thread.Sleep(1000);
        }
        Transfer.AssertIntact(world.Lab, d.Namespace, cd, c.Namespace, 1_000_000);
        output.WriteLine($"coordinator down: a-b {a.PathTo("b")}, c-d {c.PathTo("d")} via {c.Peer("d")!.Value.GetProperty("relay")}; both carry traffic");

        world.StartCoordinator();
        var back = Wait.Until(() => a.Connected && b.Connected && c.Connected && d.Connected, TimeSpan.FromSeconds(60), "every agent reconnects");
        output.WriteLine($"coordinator back: all agents reconnected after {back.TotalMilliseconds:0} ms");
        Assert.True(a.Ping(ab));
        Assert.True(c.Ping(cd));
    }

    [Fact]
    public void AKilledCoordinatorReplicaMovesItsAgentsAndTunnelsLoseNoPacket()
    {
        using var world = new MeshWorld(replicas: 3);
        using var views = new Finally(() => WriteViews(world));
        var a = world.AddAgent(world.AddSite("ha", Nat.PortKeeping, inputFirewall: true), "a");
        var b = world.AddAgent(world.AddSite("hb", Nat.PortKeeping, inputFirewall: true), "b");
        Connect(a, b);
        var target = b.MeshAddress;
        var killed = ReplicaOf(a);
        output.WriteLine($"a holds its stream with replica {killed}, b with replica {ReplicaOf(b)}");

        // 150 pings 100 ms apart run across the kill; every one must come back.
        var ping = world.Lab.Start(a.Namespace, null, "ping", "-q", "-i", "0.1", "-c", "150", "-W", "1", target);
        Thread.Sleep(3000);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        world.KillCoordinator(killed);
        Wait.Until(() => a.Connected && ReplicaOf(a) != killed, TimeSpan.FromSeconds(5), "a holds its stream with another replica within 5 s of the kill", TimeSpan.FromMilliseconds(50));
        output.WriteLine($"replica {killed} killed: a on replica {ReplicaOf(a)} after {clock.ElapsedMilliseconds} ms");
        Assert.True(ping.WaitForExit(60_000));
        var summary = ping.StandardOutput.ReadToEnd();
        output.WriteLine(summary.Trim());
        Assert.Contains("150 packets transmitted, 150 received", summary);

        // The other replicas serve the admin CLI, with every node and key.
        var others = Enumerable.Range(0, 3).Where(r => r != killed).ToList();
        foreach (var replica in others)
        {
            var nodes = world.Admin(replica, "nodes", "list");
            Assert.Contains(" a ", nodes);
            Assert.Contains(" b ", nodes);
            Assert.Single(world.Admin(replica, "keys", "list").Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1));
        }
        var created = world.Admin(others[0], "keys", "create").Trim();
        Assert.StartsWith("mpk_", created);

        // Restarted, the replica rejoins: it serves the same mesh, and a change made through it reaches the agents.
        world.StartCoordinator(killed);
        Assert.Contains(" a ", world.Admin(killed, "nodes", "list"));
        world.Admin(killed, "nodes", "rename", "b", "bravo");
        Wait.Until(() => a.Peer("bravo") is not null, TimeSpan.FromSeconds(15), "a rename through the restarted replica reaches a");
        Assert.True(a.Ping(target));
    }

    [Fact]
    public void AgentsWhoseHomeRelaysAreOnDifferentReplicasReachEachOther()
    {
        using var world = new MeshWorld(replicas: 3);
        using var views = new Finally(() => WriteViews(world));
        // Randomizing NATs on both sides: no direct path, so the pair is relayed. Site ha cannot reach the first
        // replica's relay, so a's home relay is another replica's while b's is the first replica's.
        var homeA = world.AddSite("ha", Nat.Randomizing, inputFirewall: true);
        world.Lab.Exec(homeA.Router, "iptables", "-A", "FORWARD", "-d", MeshWorld.ReplicaAddress(0), "-p", "udp", "--dport", "3480", "-j", "DROP");
        var a = world.AddAgent(homeA, "a");
        var b = world.AddAgent(world.AddSite("hb", Nat.Randomizing, inputFirewall: true), "b");
        Connect(a, b, expectDirect: false);
        Wait.Until(() => a.PathTo("b") == "relay" && b.PathTo("a") == "relay", TimeSpan.FromSeconds(30), "both ends are on a relay path");
        var (relayA, relayB) = (a.Status().GetProperty("relay").GetString(), b.Status().GetProperty("relay").GetString());
        output.WriteLine($"a's home relay {relayA}, b's {relayB}; a sends through {a.Peer("b")!.Value.GetProperty("relay")}, b through {b.Peer("a")!.Value.GetProperty("relay")}");
        Assert.Equal($"coordinator-{MeshWorld.ReplicaAddress(0)}:3480", relayB);
        Assert.NotEqual(relayB, relayA);
        for (var i = 0; i < 5; i++)
        {
            Assert.True(a.Ping(b.MeshAddress), "a reaches b");
            Assert.True(b.Ping(a.MeshAddress), "b reaches a");
        }
        Transfer.AssertIntact(world.Lab, b.Namespace, b.MeshAddress, a.Namespace, 1_000_000);
    }

    private static int ReplicaOf(MeshAgentProcess agent)
    {
        var url = agent.Status().GetProperty("coordinator").GetString()!;
        for (var i = 0; i < 3; i++)
        {
            if (url.StartsWith(MeshWorld.ReplicaUrl(i), StringComparison.Ordinal)) return i;
        }
        throw new InvalidOperationException($"{agent.Name}'s coordinator {url} is none of the replicas");
    }

    private static TimeSpan? TryWait(Func<bool> condition, TimeSpan limit)
    {
        try
        {
            return Wait.Until(condition, limit, "");
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    /// <summary>Waits for both agents to be online, then measures the first ping through the tunnel and the direct path, from that moment.</summary>
    private (TimeSpan FirstPacket, TimeSpan Direct) Connect(MeshAgentProcess a, MeshAgentProcess b, bool expectDirect = true)
    {
        Wait.Until(() => a.Connected && b.Connected, Online, "both agents are online");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var target = b.MeshAddress;
        Wait.Until(() => a.Ping(target), TimeSpan.FromSeconds(30), $"{a.Name} pings {b.Name}", TimeSpan.Zero);
        var first = clock.Elapsed;
        if (!expectDirect) return (first, TimeSpan.Zero);
        Wait.Until(() => a.PathTo(b.Name) == "direct" && b.PathTo(a.Name) == "direct", TimeSpan.FromSeconds(60), $"{a.Name} and {b.Name} go direct", TimeSpan.FromMilliseconds(250));
        return (first, clock.Elapsed);
    }

    private sealed class Finally(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}
