using Grpc.Core;
using Mesh.NatLab.Lab;
using Mesh.NatLab.Scenarios;
using Mesh.NatLab.Sim;
using Mesh.Protos.V1;
using Mesh.Traversal.Paths;

namespace Mesh.NatLab.Tests;

/// <summary>The lab's agents reach the coordinator through the production control client and gRPC service, with the statuses a real channel gives.</summary>
public sealed class ControlPlaneTests
{
    [Fact]
    public void AgentsHoldTheirStreamsWithTheServiceAndComeBackAfterItRestarts() => Scheduler.OffContext(() =>
    {
        using var world = new World(7);
        var options = new PathOptions();
        var a = Profiles.PortRestricted.Build(world, "a", options);
        var b = Profiles.Public.Build(world, "b", options);
        a.Start();
        b.Start();
        Assert.True(world.Scheduler.RunUntil(() => a.Connected && b.Connected, TimeSpan.FromSeconds(5)), "both agents hold a sync stream");
        Assert.Equal("a", a.Control.Self!.Name);
        Assert.Equal(2, world.Coordinator.OpenCalls);
        Assert.True(world.Scheduler.RunUntil(() => a.Node.View.Peers.Count == 1 && b.Node.View.Peers.Count == 1, TimeSpan.FromSeconds(5)), "each sees the other in its netmap");

        world.Coordinator.Stop();
        Assert.True(world.Scheduler.RunUntil(() => !a.Connected && !b.Connected, TimeSpan.FromSeconds(1)), "a dead coordinator ends the streams");
        world.Scheduler.RunUntil(world.Scheduler.Now + TimeSpan.FromSeconds(20));
        Assert.False(a.Connected);

        world.Coordinator.Start();
        Assert.True(world.Scheduler.RunUntil(() => a.Connected && b.Connected, TimeSpan.FromSeconds(15)), "both reconnect within the backoff's cap");
        Assert.Equal(2, world.Coordinator.OpenCalls);
    });

    [Fact]
    public void CallsGetTheServicesStatuses() => Scheduler.OffContext(() =>
    {
        using var world = new World(8);
        var client = new Protos.V1.Coordinator.CoordinatorClient(world.Coordinator.ChannelsFor(world.Coordinator.Host).For(new(world.Coordinator.Url, null)));

        var sync = client.Sync();
        var noToken = sync.ResponseStream.MoveNext(CancellationToken.None);
        world.Scheduler.RunUntil(world.Scheduler.Now + TimeSpan.FromSeconds(1));
        Assert.Equal(StatusCode.Unauthenticated, Assert.IsType<RpcException>(noToken.Exception?.InnerException).StatusCode);

        var register = client.RegisterAsync(new RegisterRequest { AuthKey = "not-a-key", Hostname = "x" }).ResponseAsync;
        world.Scheduler.RunUntil(world.Scheduler.Now + TimeSpan.FromSeconds(1));
        var refused = Assert.IsType<RpcException>(register.Exception?.InnerException);
        Assert.NotEqual(StatusCode.OK, refused.StatusCode);
        Assert.NotEqual(StatusCode.Unknown, refused.StatusCode);

        world.Coordinator.Stop();
        var challenge = client.GetChallengeAsync(new GetChallengeRequest()).ResponseAsync;
        world.Scheduler.RunUntil(world.Scheduler.Now + TimeSpan.FromSeconds(1));
        Assert.Equal(StatusCode.Unavailable, Assert.IsType<RpcException>(challenge.Exception?.InnerException).StatusCode);
    });
}
