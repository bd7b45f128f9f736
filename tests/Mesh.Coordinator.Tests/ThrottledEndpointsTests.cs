using Mesh.Coordinator.Api;
using Mesh.Protos.V1;
using Microsoft.Extensions.Time.Testing;

namespace Mesh.Coordinator.Tests;

/// <summary>A stream's endpoint updates over its rate wait rather than vanish: the mesh never chases them faster than the rate, and the node's last word still arrives.</summary>
public sealed class ThrottledEndpointsTests
{
    private static Endpoints At(int port) => TestAgent.Candidates($"198.51.100.9:{port}");

    private static List<int> Ports(FakeMeshPort mesh)
    {
        lock (mesh.Updates) return mesh.Updates.Select(e => int.Parse(e.Candidates[0].Address.Split(':')[1])).ToList();
    }

    [Fact]
    public async Task AFloodPassesItsBurstThenOnlyItsLatestUpdateAtTheRate()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddYears(56));
        var (hub, session, mesh) = await FakeMeshPort.OpenAsync(time: clock);
        using var updates = new ThrottledEndpoints(hub, session, clock, burst: 20, perSecond: 1);
        var held = 0;
        for (var port = 1; port <= 100; port++)
        {
            if (!updates.Offer(At(port))) held++;
        }
        Assert.Equal(80, held);
        Assert.Equal(Enumerable.Range(1, 20), Ports(mesh));

        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal([.. Enumerable.Range(1, 20), 100], Ports(mesh));
        clock.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(21, Ports(mesh).Count);

        // Quiet for ten seconds, the stream has tokens again: an update goes at once.
        Assert.True(updates.Offer(At(101)));
        Assert.Equal(101, Ports(mesh)[^1]);
    }

    /// <summary>A flood that never stops still gets its latest update through at the rate: the wait is not restarted by each new offer.</summary>
    [Fact]
    public async Task ASteadyFloodStillPassesItsLatestUpdateEverySecond()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddYears(56));
        var (hub, session, mesh) = await FakeMeshPort.OpenAsync(time: clock);
        using var updates = new ThrottledEndpoints(hub, session, clock, burst: 1, perSecond: 1);
        for (var port = 1; port <= 30; port++)
        {
            updates.Offer(At(port));
            clock.Advance(TimeSpan.FromMilliseconds(100));
        }
        clock.Advance(TimeSpan.FromSeconds(1));
        // One at once, then one a second from the first held one (0.1 s), each the latest at that moment, then the last.
        Assert.Equal([1, 11, 21, 30], Ports(mesh));
    }

    [Fact]
    public async Task AnUpdateHeldBehindAnotherReplacesIt()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddYears(56));
        var (hub, session, mesh) = await FakeMeshPort.OpenAsync(time: clock);
        using var updates = new ThrottledEndpoints(hub, session, clock, burst: 1, perSecond: 1);
        Assert.True(updates.Offer(At(1)));
        Assert.False(updates.Offer(At(2)));
        Assert.False(updates.Offer(At(3)));
        clock.Advance(TimeSpan.FromMilliseconds(500));
        // A token is not whole yet, and an update that comes now waits behind the held one rather than jumping it.
        Assert.False(updates.Offer(At(4)));
        clock.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Equal([1, 4], Ports(mesh));
    }
}
