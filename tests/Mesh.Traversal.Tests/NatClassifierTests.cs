using Mesh.Traversal.NatDiscovery;
using Mesh.WireGuard.Core;

namespace Mesh.Traversal.Tests;

public sealed class NatClassifierTests
{
    private static readonly NetEndpoint[] Local = [NetEndpoint.Parse("192.168.1.10:41641"), NetEndpoint.Parse("[fd00::10]:41641")];

    [Fact]
    public void SameAddressFromBothServersIsEndpointIndependent()
    {
        var verdict = NatClassifier.Classify(Local, NetEndpoint.Parse("198.51.100.7:41641"), NetEndpoint.Parse("198.51.100.7:41641"));
        Assert.Equal(NatMappingKind.EndpointIndependent, verdict.Mapping);
        Assert.Equal(NetEndpoint.Parse("198.51.100.7:41641"), verdict.Reflexive);
        Assert.False(verdict.UdpBlocked);
    }

    [Fact]
    public void DifferentPortsAreEndpointDependent()
    {
        var verdict = NatClassifier.Classify(Local, NetEndpoint.Parse("198.51.100.7:50001"), NetEndpoint.Parse("198.51.100.7:50377"));
        Assert.Equal(NatMappingKind.EndpointDependent, verdict.Mapping);
        Assert.Contains("by destination", verdict.Reason);
    }

    [Fact]
    public void OwnAddressMeansNoNat()
    {
        Assert.Equal(NatMappingKind.None, NatClassifier.Classify(Local, Local[0], Local[0]).Mapping);
    }

    [Fact]
    public void SilenceMeansUdpBlockedAndOneAnswerIsUnknown()
    {
        var blocked = NatClassifier.Classify(Local, null, null);
        Assert.True(blocked.UdpBlocked);
        Assert.Equal(NatMappingKind.Unknown, blocked.Mapping);
        var half = NatClassifier.Classify(Local, NetEndpoint.Parse("198.51.100.7:1"), null);
        Assert.False(half.UdpBlocked);
        Assert.Equal(NatMappingKind.Unknown, half.Mapping);
        Assert.Equal(NetEndpoint.Parse("198.51.100.7:1"), half.Reflexive);
    }
}
