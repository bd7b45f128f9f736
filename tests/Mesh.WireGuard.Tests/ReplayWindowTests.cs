using Mesh.WireGuard.Replay;

namespace Mesh.WireGuard.Tests;

public sealed class ReplayWindowTests
{
    private const ulong Limit = ulong.MaxValue - 8192;

    [Fact]
    public void AcceptsEachCounterOnce()
    {
        var window = new ReplayWindow();
        Assert.True(window.TryAccept(0, Limit));
        Assert.False(window.TryAccept(0, Limit));
        Assert.True(window.TryAccept(1, Limit));
        Assert.True(window.TryAccept(3, Limit));
        Assert.True(window.TryAccept(2, Limit));
        Assert.False(window.TryAccept(2, Limit));
    }

    [Fact]
    public void WindowEdges()
    {
        var window = new ReplayWindow();
        const ulong top = 100_000;
        Assert.True(window.TryAccept(top, Limit));
        // Exactly WindowSize behind is still inside; one more is outside.
        Assert.True(window.TryAccept(top - ReplayWindow.WindowSize, Limit));
        Assert.False(window.TryAccept(top - ReplayWindow.WindowSize - 1, Limit));
        Assert.False(window.TryAccept(top - ReplayWindow.WindowSize, Limit));
        Assert.True(window.TryAccept(top - 1, Limit));
    }

    [Fact]
    public void AllOrdersWithinTheWindowAreAcceptedOnce()
    {
        var window = new ReplayWindow();
        var counters = Enumerable.Range(0, ReplayWindow.WindowSize).Select(i => (ulong)i).ToArray();
        new Random(3).Shuffle(counters);
        Assert.True(window.TryAccept(ReplayWindow.WindowSize - 1, Limit));
        foreach (var counter in counters.Where(c => c != ReplayWindow.WindowSize - 1)) Assert.True(window.TryAccept(counter, Limit));
        foreach (var counter in counters) Assert.False(window.TryAccept(counter, Limit));
    }

    [Fact]
    public void AJumpFarAheadClearsTheRing()
    {
        var window = new ReplayWindow();
        for (ulong i = 0; i < 1000; i++) Assert.True(window.TryAccept(i, Limit));
        Assert.True(window.TryAccept(1_000_000, Limit));
        Assert.False(window.TryAccept(500, Limit));
        Assert.True(window.TryAccept(1_000_000 - 64, Limit));
        Assert.True(window.TryAccept(1_000_001, Limit));
    }

    [Fact]
    public void CountersAtOrAboveTheLimitAreRefused()
    {
        var window = new ReplayWindow();
        Assert.False(window.TryAccept(Limit, Limit));
        Assert.True(window.TryAccept(Limit - 1, Limit));
    }
}
