using Mesh.NatLab.Scenarios;
using Mesh.NatLab.Sim;
using Xunit.Abstractions;

namespace Mesh.NatLab.Tests;

public sealed class FaultScenarioTests(ITestOutputHelper output)
{
    [Fact]
    public void NetworkChangeMidFlow() => Check(Scheduler.OffContext(() => FaultScenarios.NetworkChange(1)));

    [Fact]
    public void ALaptopThatMovesToARandomizingNetworkRecovers() => Check(Scheduler.OffContext(() => FaultScenarios.LaptopMovesToARandomizingNetwork(10)));

    [Fact]
    public void KeepalivesKeepAPathThrough30SecondMappings() => Check(Scheduler.OffContext(() => FaultScenarios.MappingTimeout(2, keepalives: true)));

    [Fact]
    public void WithoutKeepalivesTrafficStillResumesWithoutLoss() => Check(Scheduler.OffContext(() => FaultScenarios.MappingTimeout(3, keepalives: false)));

    [Fact]
    public void RelayDeathLeavesADirectPathAlone() => Check(Scheduler.OffContext(() => FaultScenarios.RelayDiesWhileDirect(4)));

    [Fact]
    public void RelayDeathMovesRelayedTrafficToAnotherRelay() => Check(Scheduler.OffContext(() => FaultScenarios.RelayDiesWhileRelayed(5)));

    [Fact]
    public void CoordinatorDownForAMinute() => Check(Scheduler.OffContext(() => FaultScenarios.CoordinatorDownForAMinute(6)));

    [Fact]
    public void TwentyPercentLoss() => Check(Scheduler.OffContext(() => FaultScenarios.LossyLink(7)));

    [Fact]
    public void HandshakeFloodFromSpoofedSources() => Check(Scheduler.OffContext(() => FaultScenarios.HandshakeFlood(8)));

    [Fact]
    public void NetmapChurnLosesNoPacket() => Check(Scheduler.OffContext(() => FaultScenarios.NetmapChurn(9)));

    private void Check(FaultResult result)
    {
        output.WriteLine($"{result.Name}: {result.Observed}");
        Assert.True(result.Passed, $"{result.Name}: expected {result.Expected}; observed {result.Observed}");
    }
}
