using Xunit.Abstractions;

namespace Mesh.Integration.Tests;

/// <summary>
/// Home servers often run another overlay beside the mesh. With Debian's Nebula up between the same two hosts,
/// each host has an address on Nebula's TUN device; offered as a candidate, it would carry WireGuard inside
/// Nebula (measured at 129 Mbit/s against 2,419 on the plain path). The agents leave it out and say so.
/// </summary>
[Collection("mesh")]
public sealed class OverlayTests(ITestOutputHelper output) : IDisposable
{
    private const string NebulaPrefix = "172.31.100.";
    private readonly MeshWorld _world = new();

    public void Dispose()
    {
        foreach (var agent in _world.Agents) output.WriteLine($"{agent.Name}: {agent.Log}");
        _world.Dispose();
    }

    [Fact]
    public void WithNebulaBetweenTheSameHostsThePairTakesThePlainPath()
    {
        var hostA = _world.AddPublicHost("a");
        var hostB = _world.AddPublicHost("b");
        var directory = _world.Lab.TempPath("nebula");
        Directory.CreateDirectory(directory);
        NetworkLab.Run("nebula-cert", "ca", "-name", "mesh-test", "-out-crt", Path.Combine(directory, "ca.crt"), "-out-key", Path.Combine(directory, "ca.key"));
        StartNebula(directory, hostA, 1, lighthouse: null);
        StartNebula(directory, hostB, 2, lighthouse: hostA);
        Wait.Until(() => _world.Lab.TryExec(hostB.Namespace, out _, "ping", "-c", "1", "-W", "1", NebulaPrefix + "1") == 0,
            TimeSpan.FromSeconds(30), "Nebula carries b's ping to a");

        var a = _world.StartAgent(hostA);
        var b = _world.StartAgent(hostB);
        Wait.Until(() => a.Connected && b.Connected, TimeSpan.FromSeconds(60), "both agents are online");
        Wait.Until(() => a.Ping(b.MeshAddress), TimeSpan.FromSeconds(30), "a pings b");
        Wait.Until(() => a.PathTo("b") == "direct" && b.PathTo("a") == "direct", TimeSpan.FromSeconds(60), "the pair goes direct");

        foreach (var (agent, peer, peerHost) in new[] { (a, "b", hostB), (b, "a", hostA) })
        {
            var seen = agent.Peer(peer)!.Value;
            var endpoint = seen.GetProperty("endpoint").GetString()!;
            output.WriteLine($"{agent.Name} reaches {peer} at {endpoint} ({seen.GetProperty("technique").GetString()})");
            Assert.StartsWith(peerHost.Address + ":", endpoint);
            var skipped = agent.Status().GetProperty("skippedAddresses").EnumerateArray().ToList();
            Assert.Contains(skipped, s => s.GetProperty("interface").GetString() == "nebula1" && s.GetProperty("address").GetString()!.StartsWith(NebulaPrefix));
        }
        Assert.Contains("Not offering " + NebulaPrefix, a.Log.ToString());
        Assert.True(a.Ping(b.MeshAddress, "2"), "traffic flows on the plain path");
    }

    /// <summary>Nebula on a host as node <paramref name="index"/> of 172.31.100.0/24; the first is the lighthouse the others find it by.</summary>
    private void StartNebula(string directory, PublicHost host, int index, PublicHost? lighthouse)
    {
        var name = Path.Combine(directory, host.Role);
        NetworkLab.Run("nebula-cert", "sign", "-ca-crt", Path.Combine(directory, "ca.crt"), "-ca-key", Path.Combine(directory, "ca.key"),
            "-name", host.Role, "-ip", $"{NebulaPrefix}{index}/24", "-out-crt", name + ".crt", "-out-key", name + ".key");
        var config = _world.Lab.WriteFile($"nebula-{host.Role}.yml", string.Join('\n',
            "pki:",
            $"  ca: {Path.Combine(directory, "ca.crt")}",
            $"  cert: {name}.crt",
            $"  key: {name}.key",
            "static_host_map:",
            lighthouse is null ? "  {}" : $"  \"{NebulaPrefix}1\": [\"{lighthouse.Address}:4242\"]",
            "lighthouse:",
            $"  am_lighthouse: {(lighthouse is null ? "true" : "false")}",
            lighthouse is null ? "  hosts: []" : $"  hosts: [\"{NebulaPrefix}1\"]",
            "listen:",
            "  host: 0.0.0.0",
            "  port: 4242",
            "tun:",
            "  dev: nebula1",
            "  mtu: 1300",
            "firewall:",
            "  outbound: [{port: any, proto: any, host: any}]",
            "  inbound: [{port: any, proto: any, host: any}]",
            ""));
        var (process, log) = _world.Lab.StartDaemon(host.Namespace, null, "nebula", "-config", config);
        Wait.Until(() => _world.Lab.TryExec(host.Namespace, out _, "ip", "link", "show", "nebula1") == 0 || process.HasExited, TimeSpan.FromSeconds(15), "nebula brings up nebula1");
        if (process.HasExited) throw new InvalidOperationException($"nebula exited: {log}");
    }
}
