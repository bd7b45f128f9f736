using System.Net;
using Mesh.Control;

namespace Mesh.Coordinator.Tests;

/// <summary>How an agent goes through the coordinator's replicas: each URL, a name with several addresses as one replica per address.</summary>
public sealed class CoordinatorTargetsTests
{
    private static readonly Uri First = new("https://mesh1.example.org:8443");
    private static readonly Uri Second = new("https://10.0.0.12:8443");
    private static readonly Uri Pool = new("https://mesh.example.org:8443");

    [Fact]
    public async Task EachUrlInTurnFromTheAgentsOwnStart()
    {
        var targets = new CoordinatorTargets([First, Second], start: 1, Lookup(new() { ["mesh1.example.org"] = ["10.0.0.11"] }));
        Assert.Equal(Second, targets.Current.Url);
        var tried = new List<Uri>();
        for (var i = 0; i < 5; i++) tried.Add((await targets.NextAsync(CancellationToken.None)).Url);
        Assert.Equal([Second, First, Second, First, Second], tried);
        Assert.Equal(Second, targets.Current.Url);
    }

    [Fact]
    public async Task ANameWithSeveralAddressesIsOneReplicaPerAddress()
    {
        var addresses = new Dictionary<string, string[]> { ["mesh.example.org"] = ["10.0.0.11", "10.0.0.12", "10.0.0.13"] };
        var targets = new CoordinatorTargets([Pool], start: 0, Lookup(addresses));
        Assert.Null((await targets.NextAsync(CancellationToken.None)).Address);
        var round = new List<CoordinatorTarget>();
        for (var i = 0; i < 3; i++) round.Add(await targets.NextAsync(CancellationToken.None));
        Assert.Equal(["10.0.0.11", "10.0.0.12", "10.0.0.13"], round.Select(t => t.Address!.ToString()));
        Assert.All(round, t => Assert.Equal(Pool, t.Url));

        // Each round looks the name up again: a replica added to the name joins the next round.
        addresses["mesh.example.org"] = ["10.0.0.11", "10.0.0.14"];
        var next = new List<string>();
        for (var i = 0; i < 2; i++) next.Add((await targets.NextAsync(CancellationToken.None)).Address!.ToString());
        Assert.Equal(["10.0.0.11", "10.0.0.14"], next);
    }

    [Fact]
    public async Task ANameThatDoesNotResolveIsKeptSoTheAttemptSaysWhy()
    {
        var targets = new CoordinatorTargets([Pool, Second], start: 0, Lookup(new()));
        await targets.NextAsync(CancellationToken.None);
        await targets.NextAsync(CancellationToken.None);
        var again = await targets.NextAsync(CancellationToken.None);
        Assert.Equal(Pool, again.Url);
        Assert.Null(again.Address);
    }

    private static Func<string, CancellationToken, Task<IPAddress[]>> Lookup(Dictionary<string, string[]> names) => (name, _) =>
        names.TryGetValue(name, out var found)
            ? Task.FromResult(found.Select(IPAddress.Parse).ToArray())
            : Task.FromException<IPAddress[]>(new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.HostNotFound));
}
