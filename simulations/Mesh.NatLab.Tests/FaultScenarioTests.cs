using Mesh.NatLab.Scenarios;
using Xunit.Abstractions;

namespace Mesh.NatLab.Tests;

public sealed class FaultScenarioTests(ITestOutputHelper output)
{
    [Fact]
    public void NetworkChangeMidFlow() => Check(FaultScenarios.NetworkChange(1));

    [Fact]
    public void KeepalivesKeepAPathThrough30SecondMappings() => Check(FaultScenarios.MappingTimeout(2, keepalives: true));

    [Fact]
    public void WithoutKeepalivesTrafficStillResumesWithoutLoss() => Check(FaultScenarios.MappingTimeout(3, keepalives: false));

    [Fact]
    public void RelayDeathLeavesADirectPathAlone() => Check(FaultScenarios.RelayDiesWhileDirect(4));

    [Fact]
    public void RelayDeathMovesRelayedTrafficToAnotherRelay() => Check(FaultScenarios.RelayDiesWhileRelayed(5));

    [Fact]
    public void CoordinatorDownForAMinute() => Check(FaultScenarios.CoordinatorDownForAMinute(6));

    [Fact]
    public void TwentyPercentLoss() => Check(FaultScenarios.LossyLink(7));

    [Fact]
    public void HandshakeFloodFromSpoofedSources() => Check(FaultScenarios.HandshakeFlood(8));

    [Fact]
    public void NetmapChurnLosesNoPacket() => Check(FaultScenarios.NetmapChurn(9));

    private void Check(FaultResult result)
    {
        output.WriteLine($"{result.Name}: {result.Observed}");
        Assert.True(result.Passed, $"{result.Name}: expected {result.Expected}; observed {result.Observed}");
    }
}
