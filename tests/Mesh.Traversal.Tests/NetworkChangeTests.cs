using Mesh.Traversal.Stun;
using Mesh.WireGuard.Core;

namespace Mesh.Traversal.Tests;

/// <summary>What the engine takes for a new network: new addresses, or the same ones with the default route through another.</summary>
public sealed class NetworkChangeTests
{
    private static readonly NetEndpoint Local = NetEndpoint.Parse("192.168.1.10:41641");
    private static readonly NetEndpoint Mapped = NetEndpoint.Parse("198.51.100.1:41641");

    private static bool Discovers(PathHarness harness)
    {
        harness.Engine.Tick();
        return harness.Output.Take().Any(sent => StunMessage.LooksLikeStun(sent.Bytes));
    }

    [Fact]
    public void TheSameAddressesAreNoChange()
    {
        using var harness = new PathHarness();
        harness.Discover(Local, Mapped, Mapped);
        harness.Engine.NetworkChanged([Local.Address], Local.Port);
        Assert.False(Discovers(harness));
    }

    [Fact]
    public void ADefaultRouteThatMovesToAnotherInterfaceIsANewNetworkWithTheSameAddresses()
    {
        using var harness = new PathHarness();
        harness.Discover(Local, Mapped, Mapped);
        harness.Engine.NetworkChanged([Local.Address], Local.Port, routeMoved: true);
        Assert.True(Discovers(harness));
    }
}
