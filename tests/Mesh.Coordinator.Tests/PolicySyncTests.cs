using Mesh.Tests.Shared;
using Grpc.Core;
using Mesh.Coordinator.Control;
using Mesh.Protos.V1;

namespace Mesh.Coordinator.Tests;

/// <summary>The policy through the admin API and the sync streams: each node's slice of the map, its filter, and a refused policy changing nothing.</summary>
public sealed class PolicySyncTests : IAsyncLifetime
{
    // Liveness bounds, not timing assertions: how fast a policy change travels is measured by scripts/bench-coordinator.
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(10);

    private CoordinatorRig _rig = null!;

    public async Task InitializeAsync() => _rig = await CoordinatorRig.StartAsync();

    public async Task DisposeAsync() => await _rig.DisposeAsync();

    [Fact]
    public async Task EachNodeSeesOnlyThePeersThePolicyLetsItReachOrBeReachedBy()
    {
        await using var laptop = await _rig.JoinAsync("laptop", await _rig.CreateKeyAsync(tags: "tag:laptop"));
        await using var server = await _rig.JoinAsync("server", await _rig.CreateKeyAsync(tags: "tag:server"));
        await using var other = await _rig.JoinAsync("other", await _rig.CreateKeyAsync());
        await Eventually.HoldsAsync(() => other.Read(v => v.Peers.Count) == 2, Prompt, "without a policy every node sees every other");

        var set = await _rig.Admin.SetPolicyAsync(new SetPolicyRequest { Text = Policies.LaptopsToServersOnSsh });
        Assert.Equal(1u, set.Rules);
        Assert.Equal(1u, set.Tests);

        await Eventually.HoldsAsync(() => laptop.Read(v => v.PerNode && v.Peers.Count == 1 && v.FindPeer(server.NodeKey) is not null), Prompt, "the laptop sees the server only");
        await Eventually.HoldsAsync(() => server.Read(v => v.PerNode && v.Peers.Count == 1 && v.FindPeer(laptop.NodeKey) is not null), Prompt, "the server sees the laptop only");
        await Eventually.HoldsAsync(() => other.Read(v => v.PerNode && v.Peers.Count == 0), Prompt, "a node in no rule sees no one");

        // The server's filter lets the laptop's sources open TCP 22; nothing may open anything on the laptop.
        await Eventually.HoldsAsync(() => server.Read(v => v.Self?.Filter is not null), Prompt, "the server's own record with its filter");
        var filter = server.Read(v => v.Self!.Filter);
        var rule = Assert.Single(filter.Rules);
        Assert.Equal(22u, Assert.Single(rule.Ports).First);
        Assert.Contains(rule.Source, server.Read(v => v.FindPeer(laptop.NodeKey)!.PolicySources));
        await Eventually.HoldsAsync(() => laptop.Read(v => v.Self?.Filter is { Rules.Count: 0 }), Prompt, "the laptop's empty filter");
        Assert.Null(laptop.Read(v => v.FindPeer(server.NodeKey)!.Filter));

        // A node that joins later gets its slice at once.
        await using var laptop2 = await _rig.JoinAsync("laptop2", await _rig.CreateKeyAsync(tags: "tag:laptop"));
        await Eventually.HoldsAsync(() => laptop2.Read(v => v.Peers.Count == 1 && v.FindPeer(server.NodeKey) is not null), Prompt, "the new laptop sees the server");
        await Eventually.HoldsAsync(() => server.Read(v => v.Peers.Count) == 2, Prompt, "the server sees both laptops");
        Assert.Equal(0, other.Read(v => v.Peers.Count));
        Assert.Null(laptop.Read(v => v.FindPeer(laptop2.NodeKey)));

        // An edit that adds a rule gives new maps to the nodes it concerns only: the unrelated node hears nothing.
        var otherMaps = other.Read(v => v.FullMapsReceived);
        await _rig.Admin.SetPolicyAsync(new SetPolicyRequest { Text = Policies.LaptopsToServersOnSsh.Replace("\"dst\": [\"tag:server:22\"] },", "\"dst\": [\"tag:server:22\"] },\n    { \"action\": \"accept\", \"src\": [\"tag:laptop\"], \"dst\": [\"tag:server:80\"], \"proto\": \"udp\" },") });
        await Eventually.HoldsAsync(() => server.Read(v => v.Self?.Filter?.Rules.Count) == 2, Prompt, "the server's filter has the new rule");
        await Eventually.HoldsAsync(() => server.Read(v => v.FindPeer(laptop2.NodeKey)!.PolicySources.Count) == 2, Prompt, "the server has the laptops' new sources");
        Assert.Equal(otherMaps, other.Read(v => v.FullMapsReceived));

        // Back to no rules: everyone sees everyone, and the maps are shared again.
        await _rig.Admin.SetPolicyAsync(new SetPolicyRequest { Text = "{}" });
        await Eventually.HoldsAsync(() => other.Read(v => !v.PerNode && v.Peers.Count == 3), Prompt, "without acls every node sees every other again");
    }

    [Theory]
    [InlineData("{ \"acls\": [ { \"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:22\"] } ], \"tests\": [ { \"src\": \"alice@\", \"deny\": [\"bob@:22\"] } ] }",
        "The policy's tests fail: test 1 (line 1, column 81): alice@ -> bob@:22: expected denied, got allowed.")]
    [InlineData("{\n  \"acls\": [ { \"action\": \"accept\", \"src\": [\"group:nobody\"], \"dst\": [\"*:*\"] } ]\n}",
        "The policy is not valid: line 2, column 43: group \"group:nobody\" is not defined in \"groups\".")]
    public async Task ARefusedPolicyChangesNothing(string text, string message)
    {
        await _rig.Admin.SetPolicyAsync(new SetPolicyRequest { Text = Policies.LaptopsToServersOnSsh });
        var refused = await Assert.ThrowsAsync<RpcException>(async () => await _rig.Admin.SetPolicyAsync(new SetPolicyRequest { Text = text }));
        Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
        Assert.Equal(message, refused.Status.Detail);
        var current = await _rig.Admin.GetPolicyAsync(new GetPolicyRequest());
        Assert.Equal(1u, current.Version);
        Assert.Equal(Policies.LaptopsToServersOnSsh, current.Text);
    }

    [Fact]
    public async Task ThePolicyIsStoredAndVersionedAcrossRestarts()
    {
        Assert.Equal(0u, (await _rig.Admin.GetPolicyAsync(new GetPolicyRequest())).Version);
        await _rig.Admin.SetPolicyAsync(new SetPolicyRequest { Text = "{}" });
        await _rig.Admin.SetPolicyAsync(new SetPolicyRequest { Text = Policies.LaptopsToServersOnSsh });
        await _rig.RestartAsync();
        var current = await _rig.Admin.GetPolicyAsync(new GetPolicyRequest());
        Assert.Equal(2u, current.Version);
        Assert.Equal(Policies.LaptopsToServersOnSsh, current.Text);

        await using var laptop = await _rig.JoinAsync("laptop", await _rig.CreateKeyAsync(tags: "tag:laptop"));
        await using var other = await _rig.JoinAsync("other", await _rig.CreateKeyAsync());
        await Eventually.HoldsAsync(() => laptop.Read(v => v.PerNode && v.Self?.Filter is not null), Prompt, "the restarted coordinator applies the stored policy");
        Assert.Equal(0, other.Read(v => v.Peers.Count));
    }
}
