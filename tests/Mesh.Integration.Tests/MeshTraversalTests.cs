using Xunit.Abstractions;

namespace Mesh.Integration.Tests;

/// <summary>Agents in mesh mode behind real Linux NATs: which pairs go direct, which are relayed, and how paths change.</summary>
[Collection("mesh")]
public sealed class MeshTraversalTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Online = TimeSpan.FromSeconds(60);
    private readonly MeshWorld _world = new();

    public void Dispose()
    {
        // Every agent's view goes to the test output, so a failure shows what each side saw.
        foreach (var agent in _world.Agents)
        {
            output.WriteLine(agent.TryStatus(out var status) ? $"{agent.Name}: {status}" : $"{agent.Name}: no status");
        }
        _world.Dispose();
    }

    [Fact]
    public void PortKeepingNatsGoDirect()
    {
        var a = _world.AddAgent(_world.AddSite("ha", Nat.PortKeeping), "a");
        var b = _world.AddAgent(_world.AddSite("hb", Nat.PortKeeping), "b");
        var (first, direct) = Connect(a, b);
        output.WriteLine($"port-keeping pair: first packet {first.TotalMilliseconds:0} ms, direct {direct.TotalMilliseconds:0} ms after both online");
        Assert.Equal("direct", a.PathTo("b"));
        Assert.Equal("direct", b.PathTo("a"));
        Assert.True(b.Ping(a.MeshAddress));
    }

    /// <summary>Waits for both agents to be online, then measures the first ping through the tunnel and the direct path, from that moment.</summary>
    private (TimeSpan FirstPacket, TimeSpan Direct) Connect(MeshAgentProcess a, MeshAgentProcess b, bool expectDirect = true)
    {
        Wait.Until(() => a.Connected && b.Connected, Online, "both agents are online");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var target = b.MeshAddress;
        Wait.Until(() => a.Ping(target), TimeSpan.FromSeconds(30), $"{a.Name} pings {b.Name}", TimeSpan.Zero);
        var first = clock.Elapsed;
        if (!expectDirect) return (first, TimeSpan.Zero);
        Wait.Until(() => a.PathTo(b.Name) == "direct" && b.PathTo(a.Name) == "direct", TimeSpan.FromSeconds(30), $"{a.Name} and {b.Name} go direct", TimeSpan.FromMilliseconds(50));
        return (first, clock.Elapsed);
    }
}
