using System.Diagnostics;
using System.Text.Json;
using Mesh.Tests.Shared;

namespace Mesh.Integration.Tests;

public enum Nat
{
    /// <summary>No NAT: a public address (on a site, behind the router's stateful firewall).</summary>
    None,
    /// <summary>iptables MASQUERADE: keeps source ports where it can (endpoint-independent in practice).</summary>
    PortKeeping,
    /// <summary>MASQUERADE --random-fully: a random source port per connection (the hard NAT of CGNAT and LTE).</summary>
    Randomizing,
}

/// <summary>
/// A small internet in network namespaces: an "internet" router holding the coordinator at 203.0.113.1 (with
/// <c>replicas</c> above one, a cluster: replica i at 203.0.113.(i+1), all on a PostgreSQL of the test's own in
/// the same namespace), sites behind real iptables NATs (or public), and mesh agents running as processes in them.
/// </summary>
public sealed class MeshWorld : IDisposable
{
    public const string CoordinatorAddress = "203.0.113.1";
    private readonly string[] _dataDirs;
    private readonly Process?[] _coordinators;
    private readonly OutputTail?[] _coordinatorLogs;
    private readonly bool _coordinatorRelay;
    private readonly PostgresServer? _postgres;
    private int _sites;

    public MeshWorld(bool coordinatorRelay = true, int replicas = 1)
    {
        _coordinatorRelay = coordinatorRelay;
        _dataDirs = new string[replicas];
        _coordinators = new Process?[replicas];
        _coordinatorLogs = new OutputTail?[replicas];
        try
        {
            Internet = Lab.Namespace("i");
            Lab.Exec(Internet, "sysctl", "-qw", "net.ipv4.ip_forward=1");
            if (replicas > 1) _postgres = PostgresServer.Start(Internet);
            for (var i = 0; i < replicas; i++)
            {
                _dataDirs[i] = Lab.TempPath($"coordinator{i}");
                Directory.CreateDirectory(_dataDirs[i]);
                Lab.Exec(Internet, "ip", "addr", "add", ReplicaAddress(i) + "/32", "dev", "lo");
                StartCoordinator(i);
                // The first replica made the admin key; the others' admin CLIs use it as an operator would copy it.
                if (i > 0) File.Copy(Path.Combine(_dataDirs[0], "admin.key"), Path.Combine(_dataDirs[i], "admin.key"));
            }
            AuthKey = Admin(0, "keys", "create", "--reusable").Trim();
            // The replicas share the self-signed certificate through the store: one pin for all of them.
            Pin = System.Text.Json.JsonDocument.Parse(Admin(0, "status", "--json")).RootElement.GetProperty("tlsPin").GetString()!;
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public static string ReplicaAddress(int replica) => $"203.0.113.{replica + 1}";

    public static string ReplicaUrl(int replica) => $"https://{ReplicaAddress(replica)}:8443";

    /// <summary>The agents' --coordinator: every replica's URL.</summary>
    public string CoordinatorUrls => string.Join(',', Enumerable.Range(0, _coordinators.Length).Select(ReplicaUrl));

    /// <summary>A replica's data directory, which its admin CLI reads its server.url and admin.key from.</summary>
    public string DataDir(int replica) => _dataDirs[replica];

    /// <summary>Runs the admin CLI against one replica (through its data directory's server.url and admin.key).</summary>
    public string Admin(int replica, params string[] command) => Lab.Exec(Internet, ["dotnet", Binaries.Coordinator, .. command, "--data-dir", _dataDirs[replica]]);

    public NetworkLab Lab { get; } = new();
    public string Internet { get; }
    public string AuthKey { get; }

    /// <summary>The coordinator's certificate pin, as `mesh-coordinator status` shows it and agents take it.</summary>
    public string Pin { get; }
    public List<MeshAgentProcess> Agents { get; } = new();

    public void StartCoordinator(int replica = 0)
    {
        var dataDir = _dataDirs[replica];
        var address = ReplicaAddress(replica);
        List<string> args = _postgres is null
            ? ["dotnet", Binaries.Coordinator, "serve", "--listen", "0.0.0.0:8443", "--data-dir", dataDir, "--public-address", address]
            :
            [
                "dotnet", Binaries.Coordinator, "serve", "--listen", $"{address}:8443", "--data-dir", dataDir, "--public-address", address,
                "--postgres", _postgres.ConnectionString, "--advertise-address", address,
                "--silo-port", $"{11111 + replica}",
            ];
        if (!_coordinatorRelay) args.Add("--no-relay");
        File.Delete(Path.Combine(dataDir, "server.url"));
        var (process, log) = Lab.StartDaemon(Internet, null, [.. args]);
        _coordinators[replica] = process;
        _coordinatorLogs[replica] = log;
        Wait.Until(() => File.Exists(Path.Combine(dataDir, "server.url")) || process.HasExited, TimeSpan.FromSeconds(60), $"coordinator {replica} starts");
        if (process.HasExited)
        {
            process.WaitForExit();
            throw new InvalidOperationException($"mesh-coordinator {replica} exited: {log}");
        }
    }

    /// <summary>The last lines each coordinator (replica) wrote, for a failing test's output.</summary>
    public IEnumerable<string> CoordinatorLogs(int lines) =>
        _coordinatorLogs.Select((log, replica) => log is null ? $"coordinator {replica}: not started" : $"coordinator {replica}'s last log lines:\n{log.Last(lines)}");

    /// <summary>Kills a coordinator (replica) outright, as a crash or a power cut would.</summary>
    public void KillCoordinator(int replica = 0)
    {
        var process = _coordinators[replica]!;
        process.Kill(entireProcessTree: true);
        process.WaitForExit();
    }

    /// <summary>
    /// A site: a router namespace with a WAN link to the internet and a bridged LAN behind its NAT. With
    /// <paramref name="inputFirewall"/> the router drops new inbound connections to itself, as OpenWrt and most home
    /// routers do; without it, a peer's probe to the router can leave a conntrack entry that moves the router's own
    /// mapping to that peer to another port (see simulations/RESULTS.md).
    /// </summary>
    private bool _sharedSegment;

    /// <summary>The L2 segment of side-by-side routers: not a reserved block, so miniupnpd runs on those routers too.</summary>
    private const string SharedSegment = "172.33.0";

    /// <summary>
    /// A home: a router namespace with a LAN bridge (192.168.{index}.0/24) and its WAN at
    /// <paramref name="wanPrefix"/>.{index}.2 toward the internet's .1. miniupnpd refuses reserved WAN addresses
    /// (10/8 among them), so its sites take a block that is not reserved; it never leaves the test's namespaces.
    /// <see cref="Nat.None"/> makes the router a stateful firewall in front of a routed public LAN (10.200.{index}.0/24);
    /// <paramref name="behindCarrierNat"/> puts the home router behind a carrier's port-keeping NAT (100.64.{index}.0/24 between them) with an input firewall.
    /// </summary>
    public Site AddSite(string role, Nat nat, bool inputFirewall = false, bool sharedSegment = false, string wanPrefix = "10.100", bool behindCarrierNat = false)
    {
        var index = ++_sites;
        var router = Lab.Namespace(role);
        string wan, publicAddress, uplink;
        if (behindCarrierNat)
        {
            var carrier = Lab.Namespace(role + "c");
            publicAddress = $"10.100.{index}.2";
            var (_, carrierWan) = Lab.Link(Internet, $"10.100.{index}.1/24", carrier, $"{publicAddress}/24");
            Lab.Exec(carrier, "ip", "route", "add", "default", "via", $"10.100.{index}.1");
            Lab.Exec(carrier, "sysctl", "-qw", "net.ipv4.ip_forward=1");
            Lab.Exec(carrier, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", carrierWan, "-j", "MASQUERADE");
            // A carrier's NAT takes no new connections to itself; an unreplied probe to it could move a customer's mapping.
            DropNewInbound(carrier, carrierWan);
            uplink = $"100.64.{index}.1";
            (_, wan) = Lab.Link(carrier, $"{uplink}/24", router, $"100.64.{index}.2/24");
            Lab.Exec(router, "ip", "route", "add", "default", "via", uplink);
        }
        else if (sharedSegment)
        {
            // Routers side by side on one L2 segment of the internet: each is the other's next hop.
            if (!_sharedSegment)
            {
                Lab.Exec(Internet, "ip", "link", "add", "wanbr", "type", "bridge");
                Lab.Exec(Internet, "ip", "addr", "add", $"{SharedSegment}.1/24", "dev", "wanbr");
                Lab.Exec(Internet, "ip", "link", "set", "wanbr", "up");
                _sharedSegment = true;
            }
            publicAddress = $"{SharedSegment}.{index + 1}";
            uplink = $"{SharedSegment}.1";
            (wan, _) = Lab.LinkToBridge(router, $"{publicAddress}/24", Internet, "wanbr");
            Lab.Exec(router, "ip", "route", "add", "default", "via", $"{SharedSegment}.1");
        }
        else
        {
            publicAddress = $"{wanPrefix}.{index}.2";
            uplink = $"{wanPrefix}.{index}.1";
            (_, wan) = Lab.Link(Internet, $"{uplink}/24", router, $"{publicAddress}/24");
            Lab.Exec(router, "ip", "route", "add", "default", "via", uplink);
        }
        Lab.Exec(router, "sysctl", "-qw", "net.ipv4.ip_forward=1");
        Lab.Exec(router, "ip", "link", "add", "lan", "type", "bridge");
        var lan = nat == Nat.None ? $"10.200.{index}" : $"192.168.{index}";
        Lab.Exec(router, "ip", "addr", "add", $"{lan}.1/24", "dev", "lan");
        Lab.Exec(router, "ip", "link", "set", "lan", "up");
        string[] masquerade = ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", wan, "-j", "MASQUERADE"];
        if (nat == Nat.None)
        {
            Lab.Exec(Internet, "ip", "route", "add", $"{lan}.0/24", "via", publicAddress);
            Lab.Exec(router, "iptables", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT");
            Lab.Exec(router, "iptables", "-A", "FORWARD", "-i", "lan", "-j", "ACCEPT");
            Lab.Exec(router, "iptables", "-A", "FORWARD", "-j", "DROP");
        }
        else if (nat == Nat.Randomizing) Lab.Exec(router, [.. masquerade, "--random-fully"]);
        else Lab.Exec(router, masquerade);
        if (inputFirewall) DropNewInbound(router, wan);
        return new Site(router, index, publicAddress, nat) { Wan = wan, Uplink = uplink, Lan = lan };
    }

    /// <summary>
    /// Gives a site routed IPv6 (2001:db8:{index}::/64 on its LAN, no NAT) behind a stateful firewall on the router:
    /// replies and what the LAN starts pass, new inbound connections are dropped, as home routers do for IPv6.
    /// Agents added to the site afterwards get an address in it.
    /// </summary>
    public void RoutedIPv6(Site site)
    {
        var index = site.Index;
        foreach (var ns in new[] { Internet, site.Router }) Lab.Exec(ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1");
        var uplink = Lab.Exec(Internet, "ip", "-o", "route", "get", site.PublicAddress).Split(' ').SkipWhile(word => word != "dev").Skip(1).First();
        Lab.Exec(Internet, "ip", "-6", "addr", "add", $"2001:db8:100:{index}::1/64", "dev", uplink, "nodad");
        Lab.Exec(site.Router, "ip", "-6", "addr", "add", $"2001:db8:100:{index}::2/64", "dev", site.Wan, "nodad");
        Lab.Exec(site.Router, "ip", "-6", "route", "add", "default", "via", $"2001:db8:100:{index}::1");
        Lab.Exec(Internet, "ip", "-6", "route", "add", $"2001:db8:{index}::/64", "via", $"2001:db8:100:{index}::2");
        Lab.Exec(site.Router, "ip", "-6", "addr", "add", $"2001:db8:{index}::1/64", "dev", "lan", "nodad");
        Lab.Exec(site.Router, "ip6tables", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT");
        Lab.Exec(site.Router, "ip6tables", "-A", "FORWARD", "-i", "lan", "-j", "ACCEPT");
        Lab.Exec(site.Router, "ip6tables", "-A", "FORWARD", "-p", "ipv6-icmp", "-j", "ACCEPT");
        Lab.Exec(site.Router, "ip6tables", "-A", "FORWARD", "-j", "DROP");
        site.IPv6 = true;
    }

    /// <summary>
    /// Runs Debian's miniupnpd (the nftables flavour) on a site's router: NAT-PMP and PCP (<paramref name="pcp"/>)
    /// and UPnP-IGD (<paramref name="upnp"/>) on its LAN. Its package's nft_init.sh cannot run (it sources a file
    /// the package lacks), so the table and chains it fills are made here; the forward chain accepts, since the
    /// site's own iptables rules do the filtering.
    /// </summary>
    public Process StartMiniupnpd(Site site, bool pcp = true, bool upnp = true)
    {
        if (!site.MiniupnpdTables)
        {
            var tables = Lab.WriteFile($"miniupnpd-{site.Index}.nft", string.Join('\n',
                "table inet filter {",
                "  chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }",
                "  chain miniupnpd { }",
                "  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }",
                "  chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }",
                "  chain prerouting_miniupnpd { }",
                "  chain postrouting_miniupnpd { }",
                "}", ""));
            Lab.Exec(site.Router, "nft", "-f", tables);
            site.MiniupnpdTables = true;
        }
        var config = Lab.WriteFile($"miniupnpd-{site.Index}.conf", string.Join('\n',
            $"ext_ifname={site.Wan}", "listening_ip=lan", "http_port=5000", $"enable_natpmp={(pcp ? "yes" : "no")}", $"enable_upnp={(upnp ? "yes" : "no")}",
            "secure_mode=yes", "system_uptime=yes", "uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b",
            $"allow 1024-65535 192.168.{site.Index}.0/24 1024-65535", "deny 0-65535 0.0.0.0/0 0-65535", ""));
        var (process, log) = Lab.StartDaemon(site.Router, null, "miniupnpd", "-d", "-f", config);
        var ready = pcp ? "Listening for NAT-PMP/PCP" : "HTTP listening";
        Wait.Until(() => log.ToString().Contains(ready) || process.HasExited, TimeSpan.FromSeconds(10), "miniupnpd listens");
        if (process.HasExited) throw new InvalidOperationException($"miniupnpd exited: {log}");
        return process;
    }

    /// <summary>The UDP port mappings miniupnpd holds on a site's router, as "external port -> inside address:port" lines.</summary>
    public string PortMappings(Site site) => string.Join('\n', Lab.Exec(site.Router, "nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd")
        .Split('\n').Where(line => line.Contains("dnat")).Select(line => line.Trim()));

    /// <summary>An agent on a site's LAN (behind its NAT).</summary>
    public MeshAgentProcess AddAgent(Site site, string role, params string[] extra) => AddAgent(site, role, null, extra);

    /// <summary>An agent on a site's LAN with extra environment (a proxy, say).</summary>
    public MeshAgentProcess AddAgent(Site site, string role, IDictionary<string, string>? environment, params string[] extra)
    {
        var ns = Lab.Namespace(role);
        var host = 10 + site.Hosts++;
        var (device, _) = Lab.LinkToBridge(ns, $"{site.Lan}.{host}/24", site.Router, "lan");
        Lab.Exec(ns, "ip", "route", "add", "default", "via", $"{site.Lan}.1");
        if (site.IPv6)
        {
            Lab.Exec(ns, "ip", "-6", "addr", "add", $"2001:db8:{site.Index}::{host}/64", "dev", device, "nodad");
            Lab.Exec(ns, "ip", "-6", "route", "add", "default", "via", $"2001:db8:{site.Index}::1");
        }
        return StartAgent(ns, role, device, $"{site.Lan}.{host}", environment, extra);
    }

    /// <summary>
    /// Makes a port-keeping site's router a cone NAT for the next agent added to it: inbound UDP to the agent's
    /// mapped port (its default listen port, which MASQUERADE keeps) goes to it from anyone (a full cone), or with
    /// <paramref name="addressRestricted"/> only from an address it has sent to, from any port (a restricted cone,
    /// an nftables set of the addresses it sent to). Linux has neither behaviour built in; this is how they are made.
    /// </summary>
    public void Cone(Site site, bool addressRestricted)
    {
        var agent = $"{site.Lan}.{10 + site.Hosts}";
        const int port = 41641;
        var rules = Lab.WriteFile($"cone-{site.Index}.nft", string.Join('\n',
            "table ip cone {",
            "  set contacted { type ipv4_addr; flags dynamic,timeout; timeout 5m; }",
            $"  chain outbound {{ type filter hook forward priority -10; policy accept; iifname \"lan\" ip saddr {agent} udp sport {port} update @contacted {{ ip daddr }}; }}",
            $"  chain inbound {{ type nat hook prerouting priority -110; policy accept; iifname \"{site.Wan}\" udp dport {port}{(addressRestricted ? " ip saddr @contacted" : "")} dnat to {agent}:{port}; }}",
            "}", ""));
        Lab.Exec(site.Router, "nft", "-f", rules);
    }

    /// <summary>A router's input firewall: replies pass, new connections to the router itself from <paramref name="wan"/> are dropped.</summary>
    private void DropNewInbound(string router, string wan)
    {
        Lab.Exec(router, "iptables", "-A", "INPUT", "-i", wan, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT");
        Lab.Exec(router, "iptables", "-A", "INPUT", "-i", wan, "-j", "DROP");
    }

    /// <summary>The site's router forwards no UDP from its LAN at all, as some hotel, office and guest networks do.</summary>
    public void BlockUdp(Site site) => Lab.Exec(site.Router, "iptables", "-A", "FORWARD", "-i", "lan", "-p", "udp", "-j", "DROP");

    /// <summary>
    /// The site's router forwards nothing from its LAN, and an HTTP proxy on it (Debian's tinyproxy, CONNECT to
    /// the coordinator's port only) is the one way out; returns the proxy's URL for the agents' HTTPS_PROXY.
    /// </summary>
    public string ProxyOnly(Site site)
    {
        Lab.Exec(site.Router, "iptables", "-A", "FORWARD", "-i", "lan", "-j", "DROP");
        var gateway = $"192.168.{site.Index}.1";
        var config = Lab.WriteFile($"tinyproxy-{site.Index}.conf", string.Join('\n',
            "Port 3128", $"Listen {gateway}", "Timeout 600", $"Allow 192.168.{site.Index}.0/24", "ConnectPort 8443", "MaxClients 100", ""));
        var proxy = Lab.Start(site.Router, null, "tinyproxy", "-d", "-c", config);
        Wait.Until(() => Lab.TryExec(site.Router, out var sockets, "ss", "-ltn", $"src {gateway}:3128") == 0 && sockets.Contains("3128") || proxy.HasExited,
            TimeSpan.FromSeconds(10), "tinyproxy listens");
        if (proxy.HasExited) throw new InvalidOperationException($"tinyproxy exited: {proxy.StandardError.ReadToEnd()}");
        return $"http://{gateway}:3128";
    }

    /// <summary>An agent with a public address straight on the internet.</summary>
    public MeshAgentProcess AddPublicAgent(string role, params string[] extra) => StartAgent(AddPublicHost(role), extra);

    /// <summary>A host with a public address straight on the internet, with no agent yet (see <see cref="StartAgent(PublicHost, string[])"/>).</summary>
    public PublicHost AddPublicHost(string role)
    {
        var index = ++_sites;
        var ns = Lab.Namespace(role);
        var (_, device) = Lab.Link(Internet, $"10.100.{index}.1/24", ns, $"10.100.{index}.2/24");
        Lab.Exec(ns, "ip", "route", "add", "default", "via", $"10.100.{index}.1");
        return new PublicHost(role, ns, device, $"10.100.{index}.2");
    }

    public MeshAgentProcess StartAgent(PublicHost host, params string[] extra) => StartAgent(host.Namespace, host.Role, host.Device, host.Address, null, extra);

    /// <summary>Starts a stopped agent again where it was, with its state (node key) and its interface name.</summary>
    public MeshAgentProcess Restart(MeshAgentProcess agent)
    {
        Agents.Remove(agent);
        return StartAgent(agent.Namespace, agent.Name, agent.Device, agent.Underlay, null, []);
    }

    private MeshAgentProcess StartAgent(string ns, string role, string device, string underlay, IDictionary<string, string>? environment, string[] extra)
    {
        var stateDir = Lab.TempPath($"agent-{role}");
        string[] command =
        [
            "dotnet", Binaries.Agent, "up", "--foreground", "--coordinator", CoordinatorUrls, "--coordinator-pin", Pin,
            "--state-dir", stateDir, "--interface", Lab.InterfaceName(role), "--hostname", role, .. extra,
        ];
        var withKey = new Dictionary<string, string>(environment ?? new Dictionary<string, string>());
        withKey.TryAdd("MESH_AUTH_KEY", AuthKey);
        var (process, log) = Lab.StartDaemon(ns, withKey, command);
        var agent = new MeshAgentProcess(Lab, ns, role, stateDir, device, underlay, process, log);
        Agents.Add(agent);
        return agent;
    }

    public void Dispose()
    {
        Lab.Dispose();
        _postgres?.Dispose();
    }
}

public sealed class Site(string router, int index, string publicAddress, Nat nat)
{
    public string Router { get; } = router;
    public int Index { get; } = index;
    public string PublicAddress { get; } = publicAddress;
    public Nat Nat { get; } = nat;
    public int Hosts { get; set; }

    /// <summary>The router's interface toward the internet, and the internet's address on that link.</summary>
    public string Wan { get; init; } = "";
    public string Uplink { get; init; } = "";

    /// <summary>The LAN's first three octets: hosts are .10 and up, the router .1.</summary>
    public string Lan { get; init; } = "";
    public bool MiniupnpdTables { get; set; }

    /// <summary>Routed IPv6 on the LAN (<see cref="MeshWorld.RoutedIPv6"/>).</summary>
    public bool IPv6 { get; set; }
}

/// <summary>A namespace on the internet: its role, its uplink device and its public address.</summary>
public sealed record PublicHost(string Role, string Namespace, string Device, string Address);

/// <summary>One `mesh-agent up --foreground` in a namespace, read through `mesh-agent status --json`.</summary>
public sealed class MeshAgentProcess(NetworkLab lab, string ns, string name, string stateDir, string device, string underlay, Process process, OutputTail log)
{
    public OutputTail Log { get; } = log;

    public string Namespace { get; } = ns;
    public string Name { get; } = name;
    public string StateDir { get; } = stateDir;
    public string Device { get; } = device;
    public string Underlay { get; set; } = underlay;
    public Process Process { get; } = process;

    public JsonElement Status()
    {
        var (code, stdout, stderr) = NetworkLab.RunRaw("dotnet", [Binaries.Agent, "status", "--json", "--state-dir", StateDir], null);
        if (code != 0) throw new InvalidOperationException($"status of {Name} failed: {stderr.Trim()}{(Process.HasExited ? " (agent exited: " + Log.Last(20) + ")" : "")}");
        return JsonDocument.Parse(stdout).RootElement.Clone();
    }

    public bool TryStatus(out JsonElement status)
    {
        try
        {
            status = Status();
            return true;
        }
        catch (InvalidOperationException)
        {
            status = default;
            return false;
        }
    }

    public string MeshAddress => Status().GetProperty("addresses").EnumerateArray().Select(a => a.GetString()!).First(a => !a.Contains(':')).Split('/')[0];

    /// <summary>This agent's view of a peer, or null while the peer is unknown.</summary>
    public JsonElement? Peer(string peerName)
    {
        if (!TryStatus(out var status)) return null;
        foreach (var peer in status.GetProperty("peers").EnumerateArray())
        {
            if (peer.GetProperty("name").GetString() == peerName) return peer;
        }
        return null;
    }

    public string? PathTo(string peerName) => Peer(peerName)?.GetProperty("path").GetString();

    public bool Connected => TryStatus(out var status) && status.GetProperty("coordinatorConnected").GetBoolean() && status.GetProperty("addresses").GetArrayLength() > 0;

    /// <summary>One ping through the tunnel, waiting at most <paramref name="wait"/> seconds (fractions allowed).</summary>
    public bool Ping(string address, string wait = "1") => lab.TryExec(Namespace, out _, "ping", "-c", "1", "-W", wait, address) == 0;
}

public static class Wait
{
    /// <summary>Polls until the condition holds; throws with <paramref name="what"/> if it never does. Returns the time it took.</summary>
    public static TimeSpan Until(Func<bool> condition, TimeSpan limit, string what, TimeSpan? interval = null)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > limit) throw new TimeoutException($"Timed out after {limit.TotalSeconds:0}s waiting until {what}.");
            Thread.Sleep(interval ?? TimeSpan.FromMilliseconds(100));
        }
        return clock.Elapsed;
    }
}
