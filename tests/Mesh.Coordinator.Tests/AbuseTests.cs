using System.Diagnostics;
using System.Net;
using Grpc.Core;
using Mesh.Coordinator.Cluster;
using Mesh.Coordinator.Control;
using Mesh.Protos.V1;
using Mesh.WireGuard.Keys;
using Xunit.Abstractions;

namespace Mesh.Coordinator.Tests;

/// <summary>What anyone who reaches the port can try: floods, keyless sign-ups, a spent pool, silent streams, guessed admin keys.</summary>
public sealed class AbuseTests(ITestOutputHelper output)
{
    private static readonly IPAddress Elsewhere = IPAddress.Parse("127.0.0.2");

    private static Task<long> AddressCounterAsync(CoordinatorRig rig) => rig.Host.Grains.GetGrain<IRegistryGrain>(0).AddressCounter();

    private static async Task<StatusCode> CodeOf(Func<Task> call)
    {
        try
        {
            await call();
            return StatusCode.OK;
        }
        catch (RpcException ex)
        {
            return ex.StatusCode;
        }
    }

    private static async Task<TimeSpan> JoinTimeAsync(CoordinatorRig rig, string name, string key)
    {
        var clock = Stopwatch.StartNew();
        await using var agent = new TestAgent(rig, name) { Source = Elsewhere };
        Assert.Equal(RegistrationState.Approved, (await agent.RegisterAsync(key)).State);
        await agent.ConnectAsync(TestAgent.Candidates("192.0.2.44:41641"));
        Assert.False(agent.StreamEnded);
        return clock.Elapsed;
    }

    [Fact]
    public async Task AFloodOfChallengesAndKeylessSignUpsFromOneSourceTakesNoAddressAndLeavesOthersJoining()
    {
        await using var rig = await CoordinatorRig.StartAsync();
        var key = await rig.CreateKeyAsync(reusable: true);
        await JoinTimeAsync(rig, "warm", key);
        var quiet = await JoinTimeAsync(rig, "calm", key);
        var counter = await AddressCounterAsync(rig);

        var flooder = rig.NewClient();
        var statuses = new Dictionary<StatusCode, int>();
        var answered = 0;
        var flood = Task.Run(async () =>
        {
            await Parallel.ForEachAsync(Enumerable.Range(0, 100_000), new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (_, _) =>
            {
                var code = await CodeOf(() => flooder.GetChallengeAsync(new GetChallengeRequest()).ResponseAsync);
                lock (statuses) statuses[code] = statuses.GetValueOrDefault(code) + 1;
                Interlocked.Increment(ref answered);
            });
            await Parallel.ForEachAsync(Enumerable.Range(0, 5_000), new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (i, _) =>
            {
                using var nodeKey = PrivateKey.Generate();
                var code = await CodeOf(() => Mesh.Control.Registration.RegisterAsync(flooder, nodeKey, "", $"squatter{i}"));
                lock (statuses) statuses[code] = statuses.GetValueOrDefault(code) + 1;
            });
        });
        await Eventually.HoldsAsync(() => Volatile.Read(ref answered) >= 20_000 || flood.IsCompleted, TimeSpan.FromSeconds(60), "the flood is under way");
        Assert.False(flood.IsCompleted);
        var underFlood = await JoinTimeAsync(rig, "busy", key);
        await flood;

        output.WriteLine($"join from elsewhere: {quiet.TotalMilliseconds:F0} ms quiet, {underFlood.TotalMilliseconds:F0} ms under the flood");
        output.WriteLine("flood answers: " + string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key} {s.Value}")));
        // Most of the flood is refused by the per-source limit; Kestrel also resets the flooder's connection now
        // and then (its HTTP/2 flood protection), which the flooder sees as UNAVAILABLE or INTERNAL.
        Assert.True(statuses.GetValueOrDefault(StatusCode.ResourceExhausted) > 90_000);
        // The two keyed joins from elsewhere took addresses; the flood's keyless sign-ups took none and wrote no row.
        Assert.Equal(counter + 1, await AddressCounterAsync(rig));
        Assert.Equal(["busy", "calm", "warm"], (await rig.Admin.ListNodesAsync(new ListNodesRequest())).Nodes.Select(n => n.Name).Order());
        Assert.InRange((await rig.Admin.ListPendingNodesAsync(new ListPendingNodesRequest())).Nodes.Count, 1, new MeshOptions().MaxPendingNodes);
    }

    [Fact]
    public async Task TheWaitingQueueIsBoundedAndKeylessSignUpsCanBeTurnedOff()
    {
        await using (var rig = await CoordinatorRig.StartAsync(new MeshOptions { MaxPendingNodes = 3 }))
        {
            for (var i = 0; i < 3; i++) Assert.Equal(RegistrationState.Pending, (await new TestAgent(rig, $"w{i}").RegisterAsync("")).State);
            var again = new TestAgent(rig, "w-again");
            Assert.Equal(StatusCode.ResourceExhausted, await CodeOf(() => again.RegisterAsync("")));
            // A node that waits already may ask again without taking another place.
            Assert.Equal(3, (await rig.Admin.ListPendingNodesAsync(new ListPendingNodesRequest())).Nodes.Count);
        }
        await using (var rig = await CoordinatorRig.StartAsync(new MeshOptions { KeylessRegistration = false }))
        {
            var refused = await Assert.ThrowsAsync<RpcException>(() => new TestAgent(rig, "nokey").RegisterAsync(""));
            Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
            Assert.Contains("pre-auth key", refused.Status.Detail);
        }
    }

    [Fact]
    public async Task ASpentAddressPoolAnswersResourceExhaustedAndChangesNothing()
    {
        await using var rig = await CoordinatorRig.StartAsync(new MeshOptions { Ipv4Prefix = IPNetwork.Parse("100.64.0.0/30") });
        var key = await rig.CreateKeyAsync(reusable: true);
        await new TestAgent(rig, "one").RegisterAsync(key);
        await new TestAgent(rig, "two").RegisterAsync(key);
        var counter = await AddressCounterAsync(rig);
        var refused = await Assert.ThrowsAsync<RpcException>(() => new TestAgent(rig, "three").RegisterAsync(key));
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Contains("100.64.0.0/30", refused.Status.Detail);
        Assert.Equal(counter, await AddressCounterAsync(rig));
        Assert.Equal(2, (await rig.Admin.ListNodesAsync(new ListNodesRequest())).Nodes.Count);
    }

    [Fact]
    public async Task AStreamThatNeverSaysHelloIsClosed()
    {
        await using var rig = await CoordinatorRig.StartAsync();
        var agent = new TestAgent(rig, "silent");
        await agent.RegisterAsync(await rig.CreateKeyAsync());
        using var call = rig.NewClient(agent.Registration.SessionToken).Sync();
        var clock = Stopwatch.StartNew();
        var ended = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
        output.WriteLine($"closed after {clock.Elapsed.TotalSeconds:F1} s");
        Assert.Equal(StatusCode.DeadlineExceeded, ended.StatusCode);
        Assert.Contains("No hello", ended.Status.Detail);
    }

    [Fact]
    public async Task AdminActionsAreAuditedAndAGuessedKeyIsRefusedLate()
    {
        await using var rig = await CoordinatorRig.StartAsync();
        var secret = await rig.CreateKeyAsync(tags: "lab");
        var agent = new TestAgent(rig, "audited");
        await agent.RegisterAsync(secret);
        await rig.Admin.RenameNodeAsync(new RenameNodeRequest { Node = "audited", NewName = "renamed" });
        await rig.Admin.ExpireNodeAsync(new NodeRef { Node = "renamed" });

        var clock = Stopwatch.StartNew();
        var guessed = rig.AdminWithKey("mak_000000000000_" + new string('x', 43));
        Assert.Equal(StatusCode.Unauthenticated, await CodeOf(() => guessed.ListNodesAsync(new ListNodesRequest()).ResponseAsync));
        output.WriteLine($"refused after {clock.Elapsed.TotalMilliseconds:F0} ms");

        var entries = (await rig.Admin.ListAuditAsync(new ListAuditRequest())).Entries;
        var keyId = Mesh.Control.Secrets.IdOf(rig.AdminKey!, Mesh.Control.Secrets.ApiKeyPrefix);
        Assert.Equal(["nodes expire", "nodes rename renamed", "keys create"], entries.Select(e => e.Action));
        Assert.All(entries, e => Assert.Equal($"key {keyId}", e.Actor));
        Assert.All(entries, e => Assert.Equal("local socket", e.Source));
        Assert.Contains("renamed", entries[0].Target);
        Assert.Contains("tags lab", entries[2].Target);
    }
}
