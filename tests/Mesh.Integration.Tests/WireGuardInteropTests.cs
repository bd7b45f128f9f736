using Mesh.Integration.Tests;

namespace Mesh.Integration.Tests;

/// <summary>Our WireGuard against the stock wireguard-go (and against itself) across two network namespaces.</summary>
public sealed class WireGuardInteropTests : IDisposable
{
    private const string UnderlayA = "172.31.0.1";
    private const string UnderlayB = "172.31.0.2";
    private const string TunnelA = "10.99.0.1";
    private const string TunnelB = "10.99.0.2";

    private readonly NetworkLab _lab = new();
    private readonly string _nsA;
    private readonly string _nsB;
    private readonly string _linkB;

    public WireGuardInteropTests()
    {
        _nsA = _lab.Namespace("a");
        _nsB = _lab.Namespace("b");
        (_, _linkB) = _lab.Link(_nsA, UnderlayA + "/24", _nsB, UnderlayB + "/24");
    }

    public void Dispose() => _lab.Dispose();

    private (WireGuardPeer A, WireGuardPeer B) Pair(bool aIsAgent, bool bIsAgent, bool bKnowsA = true)
    {
        WireGuardPeer a = aIsAgent ? new AgentPeer(_lab, _nsA, _lab.InterfaceName("a")) : new WireGuardGoPeer(_lab, _nsA, _lab.InterfaceName("a"));
        WireGuardPeer b = bIsAgent ? new AgentPeer(_lab, _nsB, _lab.InterfaceName("b")) : new WireGuardGoPeer(_lab, _nsB, _lab.InterfaceName("b"));
        a.Up(TunnelA + "/24", 51820, b, TunnelB, UnderlayB + ":51821");
        b.Up(TunnelB + "/24", 51821, a, TunnelA, bKnowsA ? UnderlayA + ":51820" : null);
        return (a, b);
    }

    [Fact]
    public void AgentInitiatesHandshakeWithWireGuardGo()
    {
        var (agent, stock) = Pair(aIsAgent: true, bIsAgent: false);
        Assert.True(agent.Ping(TunnelB), "ping from our agent to wireguard-go");
        Assert.True(stock.Ping(TunnelA), "ping from wireguard-go to our agent");
    }

    [Fact]
    public void WireGuardGoInitiatesHandshakeWithAgent()
    {
        var (agent, stock) = Pair(aIsAgent: true, bIsAgent: false);
        Assert.True(stock.Ping(TunnelA), "ping from wireguard-go to our agent");
        Assert.True(agent.Ping(TunnelB), "ping from our agent to wireguard-go");
    }

    [Fact]
    public void HundredMegabytesArriveIntactBothWays()
    {
        var (agent, stock) = Pair(aIsAgent: true, bIsAgent: false);
        Transfer.AssertIntact(_lab, receiver: stock, receiverIp: TunnelB, sender: agent, bytes: 100_000_000);
        Transfer.AssertIntact(_lab, receiver: agent, receiverIp: TunnelA, sender: stock, bytes: 100_000_000);
    }

    [Fact]
    public void TunnelSurvivesTheAgentsUnderlayAddressChanging()
    {
        // B is our agent; A (wireguard-go) must follow B to its new address from B's authenticated packets.
        var (stock, agent) = Pair(aIsAgent: false, bIsAgent: true);
        AssertFollowsRoamingB(stock, agent, "172.31.0.3");
    }

    [Fact]
    public void TunnelBetweenAgentsSurvivesAnUnderlayAddressChange()
    {
        var (a, b) = Pair(aIsAgent: true, bIsAgent: true);
        AssertFollowsRoamingB(a, b, "172.31.0.4");
    }

    private void AssertFollowsRoamingB(WireGuardPeer a, WireGuardPeer b, string newUnderlay)
    {
        Assert.True(b.Ping(TunnelA));
        _lab.Exec(_nsB, "ip", "addr", "del", UnderlayB + "/24", "dev", _linkB);
        _lab.Exec(_nsB, "ip", "addr", "add", newUnderlay + "/24", "dev", _linkB);
        Assert.True(b.Ping(TunnelA), "ping from the roamed side");
        Assert.True(a.Ping(TunnelB), "ping back to the roamed side");
        Assert.Equal(newUnderlay + ":51821", a.DumpPeer()[2]);
    }

    [Fact]
    public void StockWgShowListsOurPeerWithEndpointHandshakeAndCounters()
    {
        var (agent, stock) = Pair(aIsAgent: true, bIsAgent: false);
        Assert.True(agent.Ping(TunnelB));
        var peer = agent.DumpPeer();
        // public-key, preshared-key, endpoint, allowed-ips, latest-handshake, rx, tx, keepalive
        Assert.Equal(stock.PublicKey.ToBase64(), peer[0]);
        Assert.Equal(UnderlayB + ":51821", peer[2]);
        Assert.Equal(TunnelB + "/32", peer[3]);
        Assert.InRange(long.Parse(peer[4]), DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 60, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 5);
        Assert.True(long.Parse(peer[5]) > 0, "rx bytes");
        Assert.True(long.Parse(peer[6]) > 0, "tx bytes");
        var show = agent.Exec("wg", "show", agent.Interface);
        Assert.Contains("latest handshake", show);
        Assert.Contains("transfer", show);
    }

    [Fact]
    public void StockWgSetChangesOurInterface()
    {
        var (agent, stock) = Pair(aIsAgent: true, bIsAgent: false);
        agent.Exec("wg", "set", agent.Interface, "peer", stock.PublicKey.ToBase64(), "persistent-keepalive", "7", "allowed-ips", TunnelB + "/32,10.98.0.0/16");
        var peer = agent.DumpPeer();
        Assert.Equal("7", peer[7]);
        Assert.Contains("10.98.0.0/16", peer[3]);
        agent.Exec("wg", "set", agent.Interface, "peer", stock.PublicKey.ToBase64(), "remove");
        Assert.Single(agent.Exec("wg", "show", agent.Interface, "dump").Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void TwoAgentsWorkWithEachOther()
    {
        var (a, b) = Pair(aIsAgent: true, bIsAgent: true, bKnowsA: false);
        Assert.True(a.Ping(TunnelB), "ping a -> b");
        Assert.True(b.Ping(TunnelA), "ping b -> a");
        Transfer.AssertIntact(_lab, receiver: b, receiverIp: TunnelB, sender: a, bytes: 100_000_000);
        Assert.Equal(UnderlayA + ":51820", b.DumpPeer()[2]);
    }

    [Fact]
    public void AgentsWithParallelCryptoWorkersDeliverIntactAndInOrder()
    {
        var a = new AgentPeer(_lab, _nsA, _lab.InterfaceName("a"), cryptoWorkers: 3);
        var b = new AgentPeer(_lab, _nsB, _lab.InterfaceName("b"), cryptoWorkers: 3);
        a.Up(TunnelA + "/24", 51820, b, TunnelB, UnderlayB + ":51821");
        b.Up(TunnelB + "/24", 51821, a, TunnelA, UnderlayA + ":51820");
        Assert.True(a.Ping(TunnelB));
        Transfer.AssertIntact(_lab, receiver: b, receiverIp: TunnelB, sender: a, bytes: 50_000_000);
        Transfer.AssertIntact(_lab, receiver: a, receiverIp: TunnelA, sender: b, bytes: 50_000_000);
    }

    [Fact]
    public void BadConfigNamesTheLineAndKeyAndCreatesNothing()
    {
        var config = _lab.WriteFile("wgmbad.conf", "[Interface]\nPrivateKey = " + new Mesh.WireGuard.Keys.PublicKey(new byte[32]).ToBase64() + "\nAddress = 10.0.0.1/24\nListenPrt = 5\n");
        var path = Path.Combine(Path.GetDirectoryName(config)!, "wgmbad.conf");
        File.Move(config, path, overwrite: true);
        var code = _lab.TryExec(_nsA, out var output, "dotnet", AgentPeer.AgentDll, "wg", "up", path);
        File.Delete(path);
        Assert.NotEqual(0, code);
        Assert.Contains("wgmbad.conf:4: ListenPrt", output);
        Assert.DoesNotContain("wgmbad", _lab.Exec(_nsA, "ip", "link"));
    }
}

internal static class Transfer
{
    private static string Script => Path.Combine(AppContext.BaseDirectory, "tools", "transfer.py");

    /// <summary>Sends random bytes through the tunnel and checks the receiver's SHA-256 matches the sender's.</summary>
    public static void AssertIntact(NetworkLab lab, WireGuardPeer receiver, string receiverIp, WireGuardPeer sender, long bytes) =>
        AssertIntact(lab, receiver.Namespace, receiverIp, sender.Namespace, bytes);

    public static void AssertIntact(NetworkLab lab, string receiverNamespace, string receiverIp, string senderNamespace, long bytes)
    {
        var server = lab.Start(receiverNamespace, null, "/usr/bin/python3", Script, "recv", receiverIp, "5201");
        Assert.Equal("LISTENING", server.StandardOutput.ReadLine());
        var sent = lab.Exec(senderNamespace, "/usr/bin/python3", Script, "send", receiverIp, "5201", bytes.ToString()).Trim();
        var received = server.StandardOutput.ReadLine()?.Trim();
        Assert.True(server.WaitForExit(60_000));
        Assert.Equal($"{bytes} ", sent[..(bytes.ToString().Length + 1)]);
        Assert.Equal(sent, received);
    }

    /// <summary>
    /// Sends UDP datagrams with GSO (so the sender's TUN device hands over USO super-packets) and returns how many
    /// arrived intact and how many did not: a datagram that arrives at all must arrive whole.
    /// </summary>
    public static (int Intact, int Corrupt) SegmentedUdp(NetworkLab lab, string receiverNamespace, string receiverIp, string senderNamespace, int count, int size)
    {
        var server = lab.Start(receiverNamespace, null, "/usr/bin/python3", Script, "udprecv", receiverIp, "5202", count.ToString());
        Assert.Equal("LISTENING", server.StandardOutput.ReadLine());
        lab.Exec(senderNamespace, "/usr/bin/python3", Script, "udpsend", receiverIp, "5202", count.ToString(), size.ToString());
        var counts = server.StandardOutput.ReadLine()!.Trim().Split(' ').Select(int.Parse).ToArray();
        Assert.True(server.WaitForExit(60_000));
        return (counts[0], counts[1]);
    }
}
