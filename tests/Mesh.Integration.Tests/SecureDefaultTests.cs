using System.Text;
using Xunit.Abstractions;

namespace Mesh.Integration.Tests;

/// <summary>
/// The coordinator as `serve` runs it by default, beyond loopback: TLS with its own certificate, agents that take it
/// only by its pin, no secret on the wire, and no listener but the announced ones.
/// </summary>
[Collection("mesh")]
public sealed class SecureDefaultTests(ITestOutputHelper output) : IDisposable
{
    private readonly MeshWorld _world = new();

    public void Dispose()
    {
        foreach (var agent in _world.Agents) output.WriteLine($"{agent.Name}: {agent.Log}");
        _world.Dispose();
    }

    [Fact]
    public void AJoinAndSyncOverTheDefaultSetupPutNoSecretOnTheWire()
    {
        var capture = _world.Lab.TempPath("join.pcap");
        var tcpdump = _world.Lab.Start(_world.Internet, null, "tcpdump", "-i", "any", "-U", "-s", "0", "-w", capture, "tcp", "port", "8443");
        Wait.Until(() => File.Exists(capture), TimeSpan.FromSeconds(10), "tcpdump writes its capture");
        // A key made now, while the capture runs: the admin CLI reaches the coordinator over its unix socket.
        var key = _world.Admin(0, "keys", "create").Trim();
        Assert.StartsWith("mpk_", key);
        var a = _world.AddAgent(_world.AddSite("ha", Nat.PortKeeping), "a");
        var b = _world.AddAgent(_world.AddSite("hb", Nat.PortKeeping), "b");
        Wait.Until(() => a.Connected && b.Connected, TimeSpan.FromSeconds(60), "both agents join and sync");
        Wait.Until(() => a.Ping(b.MeshAddress), TimeSpan.FromSeconds(30), "a pings b");
        _world.Lab.Exec(_world.Internet, "kill", "-INT", tcpdump.Id.ToString());
        tcpdump.WaitForExit(10_000);

        var bytes = File.ReadAllBytes(capture);
        var text = Encoding.Latin1.GetString(bytes);
        output.WriteLine($"captured {bytes.Length} bytes of the join and sync on TCP 8443");
        // The capture is of TLS (handshake records from both agents), and large enough to hold two joins.
        Assert.True(bytes.Length > 8_000, $"only {bytes.Length} bytes captured");
        Assert.Contains("\u0016\u0003\u0001", text);
        foreach (var secret in new[] { "mpk_", "mst_", "mak_", _world.AuthKey })
        {
            Assert.DoesNotContain(secret, text);
        }
    }

    [Fact]
    public void TheEmbeddedCoordinatorListensOnlyOnTheAnnouncedPorts()
    {
        var a = _world.AddAgent(_world.AddSite("ha", Nat.PortKeeping), "a");
        Wait.Until(() => a.Connected, TimeSpan.FromSeconds(60), "the agent joins");
        var tcp = Listening("-ltnH");
        var udp = Listening("-lunH");
        output.WriteLine($"TCP: {string.Join(", ", tcp)}; UDP: {string.Join(", ", udp)}");
        // gRPC (agents); STUN on two ports and the relay. No Orleans silo or gateway, no admin port (a unix socket).
        Assert.Equal(["8443"], tcp);
        Assert.Equal(["3478", "3479", "3480"], udp);
    }

    /// <summary>The ports something listens on in the coordinator's namespace, which holds the coordinator alone.</summary>
    private List<string> Listening(string flags) =>
        _world.Lab.Exec(_world.Internet, "ss", flags).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3])
            .Select(local => local[(local.LastIndexOf(':') + 1)..]).Distinct().Order(StringComparer.Ordinal).ToList();

    [Fact]
    public void AManInTheMiddleWithItsOwnCertificateIsRefusedWithAClearError()
    {
        // The man in the middle: a TLS proxy with a certificate of its own on the internet, to which the agent's
        // router sends everything meant for the coordinator's port (as a hostile hotel Wi-Fi or ISP would).
        const string mitm = "203.0.113.66";
        _world.Lab.Exec(_world.Internet, "ip", "addr", "add", $"{mitm}/32", "dev", "lo");
        var pem = _world.Lab.TempPath("mitm.pem");
        NetworkLab.Run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", $"/CN={MeshWorld.CoordinatorAddress}", "-addext", $"subjectAltName=IP:{MeshWorld.CoordinatorAddress}", "-keyout", pem, "-out", pem);
        // Its own port: the coordinator listens on every address of the namespace at 8443.
        _world.Lab.Start(_world.Internet, null, "socat", $"openssl-listen:9443,bind={mitm},reuseaddr,fork,cert={pem},verify=0",
            $"openssl:{MeshWorld.CoordinatorAddress}:8443,verify=0");
        var site = _world.AddSite("ha", Nat.PortKeeping);
        _world.Lab.Exec(site.Router, "iptables", "-t", "nat", "-I", "PREROUTING", "-p", "tcp", "-d", MeshWorld.CoordinatorAddress, "--dport", "8443",
            "-j", "DNAT", "--to-destination", $"{mitm}:9443");
        var a = _world.AddAgent(site, "a");

        Wait.Until(() => a.Log.ToString().Contains("not the --coordinator-pin"), TimeSpan.FromSeconds(60), "the agent refuses the certificate");
        var line = a.Log.ToString().Split('\n').First(l => l.Contains("not the --coordinator-pin"));
        output.WriteLine(line);
        Assert.Contains($"not the --coordinator-pin {_world.Pin} given: refused", line);
        Assert.False(a.TryStatus(out var status) && status.GetProperty("coordinatorConnected").GetBoolean());
        Assert.Equal(0, a.TryStatus(out status) ? status.GetProperty("addresses").GetArrayLength() : 0);
    }
}
