using System.Diagnostics;
using System.Text.Json;
using Mesh.Protos.V1;

namespace Mesh.Coordinator.Tests;

/// <summary>The admin CLI as scripts use it: a process, exit codes, one-line errors, --json.</summary>
public sealed class AdminCliTests : IAsyncLifetime
{
    private CoordinatorRig _rig = null!;

    public async Task InitializeAsync() => _rig = await CoordinatorRig.StartAsync();

    public async Task DisposeAsync() => await _rig.DisposeAsync();

    private (int Code, string Stdout, string Stderr) Cli(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "mesh-coordinator.dll"));
        foreach (var arg in args) info.ArgumentList.Add(arg);
        info.ArgumentList.Add("--data-dir");
        info.ArgumentList.Add(_rig.DataDir);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result, stderr);
    }

    [Fact]
    public async Task UsersOwnKeysAndTheNodesThatJoinWithThem()
    {
        Assert.Equal(0, Cli("users", "create", "alice").Code);
        var (keyCode, secret, _) = Cli("keys", "create", "--user", "alice");
        Assert.Equal(0, keyCode);
        var agent = new TestAgent(_rig, "alice-laptop");
        await agent.RegisterAsync(secret.Trim());
        Assert.Equal("alice", (await _rig.Admin.GetNodeAsync(new NodeRef { Node = "alice-laptop" })).User);
        Assert.Equal(["alice"], (await _rig.Admin.ListPreAuthKeysAsync(new ListPreAuthKeysRequest())).Keys.Select(k => k.User));

        var (listCode, table, _) = Cli("users", "list");
        Assert.Equal(0, listCode);
        Assert.Equal(["default", "alice"], table.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]));

        // A user who still owns a node or a key is not deleted, and says why; a bad or taken name changes nothing.
        var (deleteCode, _, refusal) = Cli("users", "delete", "alice");
        Assert.NotEqual(0, deleteCode);
        Assert.Contains("still owns 1 nodes and 1 pre-auth keys", refusal);
        Assert.NotEqual(0, Cli("users", "create", "bad name").Code);
        Assert.NotEqual(0, Cli("users", "rename", "alice", "default").Code);
        Assert.NotEqual(0, Cli("keys", "create", "--user", "nobody").Code);

        Assert.Equal(0, Cli("users", "rename", "alice", "alice@example.com").Code);
        Assert.Equal("alice@example.com", (await _rig.Admin.GetNodeAsync(new NodeRef { Node = "alice-laptop" })).User);
        Assert.Equal(0, Cli("users", "create", "bob").Code);
        Assert.Equal(0, Cli("users", "delete", "bob").Code);
        Assert.Equal(["default", "alice@example.com"], (await _rig.Admin.ListUsersAsync(new ListUsersRequest())).Users.Select(u => u.Name));
    }

    [Fact]
    public async Task KeysNodesAndStatusThroughTheDataDirectory()
    {
        var (code, secret, _) = Cli("keys", "create", "--reusable", "--expiration", "1h", "--tags", "lab,home");
        Assert.Equal(0, code);
        Assert.StartsWith("mpk_", secret.Trim());

        var agent = new TestAgent(_rig, "cli-node");
        await agent.RegisterAsync(secret.Trim());

        var (listCode, table, _) = Cli("nodes", "list");
        Assert.Equal(0, listCode);
        Assert.Contains("cli-node", table);
        Assert.StartsWith("ID", table);

        var (jsonCode, json, _) = Cli("nodes", "list", "--json");
        Assert.Equal(0, jsonCode);
        var node = JsonDocument.Parse(json).RootElement.GetProperty("nodes")[0];
        Assert.Equal("cli-node", node.GetProperty("name").GetString());
        Assert.Equal(["lab", "home"], node.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));

        Assert.Equal(0, Cli("nodes", "rename", "cli-node", "renamed").Code);
        Assert.Equal(0, Cli("nodes", "expire", "renamed").Code);
        Assert.Equal(NodeState.Expired, (await _rig.Admin.GetNodeAsync(new NodeRef { Node = "renamed" })).State);

        var (statusCode, status, _) = Cli("status");
        Assert.Equal(0, statusCode);
        Assert.Contains("nodes          1 (0 online)", status);
    }

    [Fact]
    public void FailuresExitNonZeroWithOneLineOnStderr()
    {
        var (missing, _, error) = Cli("nodes", "show", "nobody");
        Assert.Equal(1, missing);
        Assert.Equal("mesh-coordinator: NotFound: No node \"nobody\" (give an id, a name or a node key).", error.Trim());

        var (badKey, _, keyError) = Cli("nodes", "list", "--api-key", "mak_000000000000_" + new string('x', 43));
        Assert.Equal(1, badKey);
        Assert.Single(keyError.Trim().Split('\n'));
        Assert.Contains("Unauthenticated", keyError);

        var (usage, _, usageError) = Cli("keys", "create", "--expiration", "whenever");
        Assert.Equal(2, usage);
        Assert.Single(usageError.Trim().Split('\n'));
        Assert.Contains("--expiration", usageError);

        var (down, _, downError) = Cli("status", "--server", "http://127.0.0.1:1");
        Assert.Equal(1, down);
        Assert.Contains("Unavailable", downError);
    }
}
