namespace Mesh.Integration.Tests;

/// <summary>wg-quick behaviour of `mesh-agent wg up/down`: routes, tables, hooks, the daemon's own detaching.</summary>
public sealed class WgQuickTests : IDisposable
{
    private readonly NetworkLab _lab = new();
    private readonly string _ns;

    public WgQuickTests() => _ns = _lab.Namespace("q");

    public void Dispose() => _lab.Dispose();

    private string Config(string name, string extraInterface, string allowedIps)
    {
        var key = Mesh.WireGuard.Keys.PrivateKey.Generate().ToBase64();
        var peer = Mesh.WireGuard.Keys.PrivateKey.Generate().PublicKey.ToBase64();
        var written = _lab.WriteFile(name + ".conf", $"""
            [Interface]
            PrivateKey = {key}
            Address = 10.77.1.1/24, fd77::1/64
            {extraInterface}

            [Peer]
            PublicKey = {peer}
            AllowedIPs = {allowedIps}
            """);
        var path = Path.Combine(Path.GetDirectoryName(written)!, name + ".conf");
        File.Move(written, path, overwrite: true);
        return path;
    }

    private (int Code, string Output) Agent(params string[] args) =>
        (_lab.TryExec(_ns, out var output, ["dotnet", AgentPeer.AgentDll, .. args]), output);

    [Fact]
    public void UpDetachesAddsAddressesRoutesAndRunsHooksThenDownUndoesIt()
    {
        var name = _lab.InterfaceName("h");
        var marker = Path.Combine(Path.GetTempPath(), $"{name}-hooks");
        var path = Config(name, $"MTU = 1380\nPostUp = echo up %i >> {marker}\nPreDown = echo down %i >> {marker}", "10.77.2.0/24, 192.168.77.0/24, fd78::/64");
        var (code, output) = Agent("wg", "up", path);
        Assert.True(code == 0, output);
        try
        {
            var link = _lab.Exec(_ns, "ip", "link", "show", name);
            Assert.Contains("mtu 1380", link);
            Assert.Contains("UP", link);
            Assert.Contains("10.77.1.1/24", _lab.Exec(_ns, "ip", "-4", "addr", "show", name));
            Assert.Contains("fd77::1/64", _lab.Exec(_ns, "ip", "-6", "addr", "show", name));
            var routes = _lab.Exec(_ns, "ip", "-4", "route", "show", "dev", name);
            Assert.Contains("10.77.2.0/24", routes);
            Assert.Contains("192.168.77.0/24", routes);
            Assert.Contains("fd78::/64", _lab.Exec(_ns, "ip", "-6", "route", "show", "dev", name));
            Assert.Equal($"up {name}\n", File.ReadAllText(marker));
        }
        finally
        {
            var (downCode, downOutput) = Agent("wg", "down", name);
            Assert.True(downCode == 0, downOutput);
        }
        Assert.NotEqual(0, _lab.TryExec(_ns, out _, "ip", "link", "show", name));
        Assert.Equal($"up {name}\ndown {name}\n", File.ReadAllText(marker));
        File.Delete(marker);
    }

    [Fact]
    public void TableOffAddsNoRoutes()
    {
        var name = _lab.InterfaceName("t");
        var (code, output) = Agent("wg", "up", Config(name, "Table = off", "10.77.3.0/24"));
        Assert.True(code == 0, output);
        try
        {
            Assert.DoesNotContain("10.77.3.0/24", _lab.Exec(_ns, "ip", "-4", "route", "show", "dev", name));
        }
        finally
        {
            Agent("wg", "down", name);
        }
    }

    [Fact]
    public void AFailingHookLeavesNothingBehind()
    {
        var name = _lab.InterfaceName("f");
        var (code, output) = Agent("wg", "up", Config(name, "PostUp = false", "10.77.4.0/24"));
        Assert.NotEqual(0, code);
        Assert.Contains("false", output);
        Assert.NotEqual(0, _lab.TryExec(_ns, out _, "ip", "link", "show", name));
        Assert.False(File.Exists($"/var/run/wireguard/{name}.sock"));
    }

    [Fact]
    public void DownOfAnInterfaceThatIsNotUpSaysSo()
    {
        var (code, output) = Agent("wg", "down", _lab.InterfaceName("n"));
        Assert.Equal(1, code);
        Assert.Contains("is not up", output);
    }
}
