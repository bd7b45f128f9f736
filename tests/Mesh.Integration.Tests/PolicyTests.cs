using Mesh.Tests.Shared;
using System.Diagnostics;
using Xunit.Abstractions;

namespace Mesh.Integration.Tests;

/// <summary>
/// The coordinator's policy on real agents behind real NATs: what a peer may open is enforced by the agent it is
/// sent to, a node sees only the peers the policy relates it to, and a policy change reaches tunnels already open.
/// </summary>
[Collection("mesh")]
public sealed class PolicyTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Online = TimeSpan.FromSeconds(60);
    private readonly MeshWorld _world = new();

    public void Dispose()
    {
        foreach (var agent in _world.Agents)
        {
            output.WriteLine(agent.TryStatus(out var status) ? $"{agent.Name}: {status}" : $"{agent.Name}: no status");
            output.WriteLine($"{agent.Name}'s last log lines:\n{agent.Log.Last(20)}");
        }
        foreach (var log in _world.CoordinatorLogs(30)) output.WriteLine(log);
        _world.Dispose();
    }

    [Fact]
    public void APolicyLetsLaptopsOpenSshOnServersAndNothingElse()
    {
        var laptopKey = _world.Admin(0, "keys", "create", "--tags", "tag:laptop").Trim();
        var serverKey = _world.Admin(0, "keys", "create", "--tags", "tag:server").Trim();
        var laptop = _world.AddAgent(_world.AddSite("hl", Nat.PortKeeping), "laptop", new Dictionary<string, string> { ["MESH_AUTH_KEY"] = laptopKey });
        var server = _world.AddAgent(_world.AddSite("hs", Nat.PortKeeping), "server", new Dictionary<string, string> { ["MESH_AUTH_KEY"] = serverKey });
        var other = _world.AddAgent(_world.AddSite("ho", Nat.PortKeeping), "other");
        Wait.Until(() => laptop.Connected && server.Connected && other.Connected, Online, "all three agents are online");
        var laptopAddress = laptop.MeshAddress;
        var serverAddress = server.MeshAddress;
        Listen(server, serverAddress, 22);
        Listen(server, serverAddress, 80);
        Listen(laptop, laptopAddress, 22);

        // Without a policy the mesh is flat: the server opens SSH on the laptop through the tunnel.
        Wait.Until(() => Opens(server, laptopAddress, 22), TimeSpan.FromSeconds(30), "the server opens the laptop's port 22 without a policy");
        Wait.Until(() => Opens(other, serverAddress, 80), TimeSpan.FromSeconds(30), "the unrelated node opens the server's port 80 without a policy");

        // A policy whose tests fail is refused, naming the test, and changes nothing.
        var failing = _world.Lab.WriteFile("failing.hujson", Policies.LaptopsToServersOnSsh.Replace("\"deny\": [\"tag:server:80\"]", "\"deny\": [\"tag:server:22\"]"));
        var (code, refusal) = RunAdmin("policy", "set", failing);
        Assert.NotEqual(0, code);
        Assert.Contains("test 1 (line 9, column 5): tag:laptop -> tag:server:22: expected denied, got allowed", refusal);
        Assert.Contains("No policy is set", RunAdmin("policy", "get").Text);

        var file = _world.Lab.WriteFile("policy.hujson", Policies.LaptopsToServersOnSsh);
        var clock = Stopwatch.StartNew();
        Assert.Contains("policy version 1 in force: 1 rules, 1 tests passed", _world.Admin(0, "policy", "set", file));
        var set = clock.Elapsed;
        var applied = Wait.Until(() => !Opens(server, laptopAddress, 22, "0.5") && other.Status().GetProperty("peers").GetArrayLength() == 0,
            TimeSpan.FromSeconds(30), "the policy reaches the open tunnels");
        output.WriteLine($"policy set: the CLI returned after {set.TotalMilliseconds:0} ms; {applied.TotalMilliseconds:0} ms later the server's open tunnel to the laptop refused a new connection and the unrelated node's map was empty (as polled: one 0.5 s connection attempt and one status call at a time)");

        Assert.True(Opens(laptop, serverAddress, 22), "the laptop opens SSH on the server");
        Assert.False(Opens(laptop, serverAddress, 80), "the laptop does not open port 80 on the server");
        Assert.False(Opens(server, laptopAddress, 22), "the server does not open a connection to the laptop");
        Assert.False(Opens(other, serverAddress, 22), "the unrelated node does not reach the server");
        Assert.Equal(["server"], Peers(laptop));
        Assert.Equal(["laptop"], Peers(server));
        Assert.Empty(Peers(other));

        var serverPolicy = server.Status().GetProperty("policy");
        Assert.True(serverPolicy.GetProperty("active").GetBoolean());
        Assert.True(serverPolicy.GetProperty("dropped").GetProperty("tcp-not-allowed").GetUInt64() > 0, "the server counted the laptop's SYNs to port 80");
        Assert.True(laptop.Status().GetProperty("policy").GetProperty("dropped").GetProperty("tcp-not-allowed").GetUInt64() > 0, "the laptop counted the server's SYNs");
        Assert.Contains("\"tag:server:22\"", RunAdmin("policy", "get").Text);
    }

    /// <summary>The admin CLI with its exit code and everything it wrote (a refusal goes to stderr).</summary>
    private (int Code, string Text) RunAdmin(params string[] command)
    {
        var code = _world.Lab.TryExec(_world.Internet, out var text, ["dotnet", Binaries.Coordinator, .. command, "--data-dir", _world.DataDir(0)]);
        return (code, text);
    }

    private static string[] Peers(MeshAgentProcess agent) =>
        agent.Status().GetProperty("peers").EnumerateArray().Select(p => p.GetProperty("name").GetString()!).Order().ToArray();

    private void Listen(MeshAgentProcess agent, string address, int port) =>
        _world.Lab.Start(agent.Namespace, null, "socat", $"TCP-LISTEN:{port},bind={address},fork,reuseaddr", "SYSTEM:echo open");

    /// <summary>Whether a TCP connection from the agent's host to address:port completes within the wait.</summary>
    private bool Opens(MeshAgentProcess from, string address, int port, string wait = "2") =>
        _world.Lab.TryExec(from.Namespace, out _, "timeout", wait, "bash", "-c", $"exec 3<>/dev/tcp/{address}/{port}") == 0;
}
