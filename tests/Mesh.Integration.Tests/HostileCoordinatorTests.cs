using Xunit.Abstractions;

namespace Mesh.Integration.Tests;

/// <summary>
/// The agent trusts the coordinator for its peers, never for its host: a coordinator that lies in its netmaps
/// (a default route, the agents' LAN, its own address, junk, a low-order key; a member aiming the mesh at a third
/// party) neither reroutes the host nor makes the agent send more than its probe budget, and the valid peers work.
/// </summary>
[Collection("mesh")]
public sealed class HostileCoordinatorTests(ITestOutputHelper output) : IDisposable
{
    private const string LyingCoordinator = "192.168.77.1";
    private readonly NetworkLab _lab = new();
    private readonly List<MeshAgentProcess> _agents = new();

    public void Dispose()
    {
        foreach (var agent in _agents) output.WriteLine($"{agent.Name}: {(agent.TryStatus(out var status) ? status.ToString() : "no status")}\n{agent.Log}");
        _lab.Dispose();
    }

    /// <summary>A LAN (192.168.77.0/24, a default route to a gateway that is not there) with the lying coordinator and the agents on it.</summary>
    private string Lan(string mode, string argument)
    {
        var lan = _lab.Namespace("l");
        _lab.Exec(lan, "ip", "link", "add", "br0", "type", "bridge");
        _lab.Exec(lan, "ip", "link", "set", "br0", "up");
        var liar = _lab.Namespace("c");
        _lab.LinkToBridge(liar, $"{LyingCoordinator}/24", lan, "br0");
        _lab.StartDaemon(liar, null, "dotnet", Binaries.HostileCoordinator, $"{LyingCoordinator}:8443", mode, argument);
        return lan;
    }

    private MeshAgentProcess Agent(string lan, string name, int host)
    {
        var ns = _lab.Namespace(name);
        var (device, _) = _lab.LinkToBridge(ns, $"192.168.77.{host}/24", lan, "br0");
        _lab.Exec(ns, "ip", "route", "add", "default", "via", "192.168.77.254");
        var stateDir = _lab.TempPath($"agent-{name}");
        var (process, log) = _lab.StartDaemon(ns, null, "dotnet", Binaries.Agent, "up", "--foreground", "--coordinator", $"http://{LyingCoordinator}:8443", "--insecure-plaintext",
            "--state-dir", stateDir, "--interface", _lab.InterfaceName(name), "--hostname", name);
        var agent = new MeshAgentProcess(_lab, ns, name, stateDir, device, device, process, log);
        _agents.Add(agent);
        return agent;
    }

    private string Routes(string ns) => _lab.Exec(ns, "ip", "-4", "route") + _lab.Exec(ns, "ip", "-6", "route");

    [Fact]
    public void HostileRoutesAndKeysLeaveTheHostsRoutesAloneAndTheValidPeersWork()
    {
        var lan = Lan("routes", "0.0.0.0/0,192.168.77.0/24,192.168.77.1/32,10.99.0.0/16,::/0,not-a-prefix");
        var a = Agent(lan, "a", 2);
        var b = Agent(lan, "b", 3);
        var before = Routes(a.Namespace);
        Wait.Until(() => a.Connected && b.Connected, TimeSpan.FromSeconds(60), "both agents take the lying map");
        Wait.Until(() => a.Ping(b.MeshAddress), TimeSpan.FromSeconds(30), "a pings b through the mesh");

        var after = Routes(a.Namespace);
        output.WriteLine($"routes before:\n{before}\nroutes after:\n{after}");
        var added = after.Split('\n').Except(before.Split('\n')).Where(l => l.Length > 0).ToList();
        // Only the mesh's own routes were added, into the mesh interface: the default route, the LAN, the
        // coordinator's address and everything outside the mesh prefixes stayed as they were.
        Assert.NotEmpty(added);
        Assert.All(added, line => Assert.Matches(@"^(100\.64\.0\.\d+|fd00:5::\d+|fe80::/64) .*dev " + _lab.InterfaceName("a") + " ", line));
        Assert.Contains("default via 192.168.77.254", after);
        Assert.Equal(before.Split('\n').Where(l => l.Contains("192.168.77.0/24") || l.StartsWith("default")), after.Split('\n').Where(l => l.Contains("192.168.77.0/24") || l.StartsWith("default")));
        var log = a.Log.ToString();
        foreach (var refused in new[] { "0.0.0.0/0", "192.168.77.0/24", "192.168.77.1/32", "10.99.0.0/16", "::/0", "not-a-prefix" })
        {
            Assert.Contains($"Ignored the route {refused} of peer b", log);
        }
        // The peers with unusable keys never became WireGuard peers.
        Assert.DoesNotContain(a.Status().GetProperty("peers").EnumerateArray(), p => p.GetProperty("name").GetString() is "low-order" or "short-key");
    }

    [Fact]
    public void AMemberAimingTheMeshAtASinkGetsNoMoreThanTheProbeBudget()
    {
        var lan = Lan("flood", "192.168.77.9");
        var sink = _lab.Namespace("s");
        _lab.LinkToBridge(sink, "192.168.77.9/24", lan, "br0");
        // The sink counts what reaches it: every UDP datagram to it, whatever the port.
        _lab.Exec(sink, "iptables", "-A", "INPUT", "-p", "udp", "-j", "ACCEPT");
        var agent = Agent(lan, "a", 2);
        Wait.Until(() => agent.Connected, TimeSpan.FromSeconds(60), "the agent takes the lying map");
        // However fast the member pushes, the sink's count grows at the budget's rate: wait until it has 300
        // datagrams (a broken budget gets there at once) and hold the count against the time it took.
        var start = Counted(sink);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Wait.Until(() => Counted(sink) - start >= 300, TimeSpan.FromSeconds(60), "the sink receives 300 datagrams");
        var received = Counted(sink) - start;
        var seconds = clock.Elapsed.TotalSeconds;
        // The documented bound: a burst of 64 probes, then 20 a second, for the one peer the member is.
        var bound = 64 + 20 * seconds;
        output.WriteLine($"the sink received {received} datagrams in {seconds:0.0} s from an agent told of 16 new candidates and asked to connect every 100 ms (bound {bound:0})");
        Assert.InRange(received, 1, bound);
    }

    private long Counted(string sink)
    {
        var line = _lab.Exec(sink, "iptables", "-L", "INPUT", "-v", "-x", "-n").Split('\n').First(l => l.TrimStart().Length > 0 && char.IsDigit(l.TrimStart()[0]));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0]);
    }
}
