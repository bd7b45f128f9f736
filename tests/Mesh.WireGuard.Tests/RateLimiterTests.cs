using Mesh.WireGuard.Core;
using Mesh.WireGuard.RateLimit;

namespace Mesh.WireGuard.Tests;

public sealed class RateLimiterTests
{
    [Fact]
    public void BurstThenSteadyRatePerSource()
    {
        var limiter = new HandshakeRateLimiter();
        var source = NetEndpoint.Parse("192.0.2.1:1");
        var now = TimeSpan.FromSeconds(10);
        var allowed = 0;
        for (var i = 0; i < 100; i++) allowed += limiter.Allow(source, now) ? 1 : 0;
        Assert.Equal(HandshakeRateLimiter.Burst, allowed);
        Assert.True(limiter.Allow(NetEndpoint.Parse("192.0.2.2:1"), now));

        allowed = 0;
        for (var ms = 0; ms < 1000; ms++) allowed += limiter.Allow(source, now + TimeSpan.FromMilliseconds(ms + 1)) ? 1 : 0;
        Assert.InRange(allowed, HandshakeRateLimiter.PacketsPerSecond - 1, HandshakeRateLimiter.PacketsPerSecond + 1);
    }

    [Fact]
    public void PortsOfOneAddressShareABucketAndIdleBucketsAreSwept()
    {
        var limiter = new HandshakeRateLimiter();
        var now = TimeSpan.FromSeconds(10);
        var allowed = 0;
        for (var port = 1; port <= 100; port++) allowed += limiter.Allow(NetEndpoint.Parse($"192.0.2.1:{port}"), now) ? 1 : 0;
        Assert.Equal(HandshakeRateLimiter.Burst, allowed);
        limiter.Allow(NetEndpoint.Parse("192.0.2.9:1"), now + TimeSpan.FromSeconds(5));
        Assert.Equal(1, limiter.TrackedSources);
    }
}
