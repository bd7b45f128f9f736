using Mesh.WireGuard.Core;

namespace Mesh.Traversal.NatDiscovery;

public enum NatMappingKind
{
    /// <summary>No STUN server answered: outbound UDP may be blocked.</summary>
    Unknown,

    /// <summary>The socket is reachable at its own address: no translation.</summary>
    None,

    /// <summary>One public address:port for every destination (RFC 4787 endpoint-independent): hole punching works.</summary>
    EndpointIndependent,

    /// <summary>A different public port per destination: needs the hard-NAT technique or a relay.</summary>
    EndpointDependent,
}

public sealed record NatVerdict(NatMappingKind Mapping, NetEndpoint? Reflexive, bool UdpBlocked, string Reason);

/// <summary>
/// What two STUN servers (two ports of one coordinator) saw of one socket says how the NAT in front of it
/// maps: the same address from both means endpoint-independent mapping; different ports mean the mapping
/// varies by destination. No I/O.
/// </summary>
public static class NatClassifier
{
    public static NatVerdict Classify(IReadOnlyCollection<NetEndpoint> localEndpoints, NetEndpoint? seenByFirst, NetEndpoint? seenBySecond)
    {
        if (seenByFirst is null && seenBySecond is null)
        {
            return new NatVerdict(NatMappingKind.Unknown, null, UdpBlocked: true, "no STUN server answered: UDP looks blocked");
        }
        if (seenByFirst is null || seenBySecond is null)
        {
            return new NatVerdict(NatMappingKind.Unknown, seenByFirst ?? seenBySecond, UdpBlocked: false, "only one STUN server answered: mapping behaviour unknown");
        }
        var first = seenByFirst.Value;
        var second = seenBySecond.Value;
        if (first != second)
        {
            return new NatVerdict(NatMappingKind.EndpointDependent, first, UdpBlocked: false,
                $"the NAT maps by destination ({first} and {second}): source ports vary");
        }
        if (localEndpoints.Contains(first))
        {
            return new NatVerdict(NatMappingKind.None, first, UdpBlocked: false, $"{first} is this host's own address: no NAT");
        }
        return new NatVerdict(NatMappingKind.EndpointIndependent, first, UdpBlocked: false, $"both STUN servers saw {first}: the mapping keeps to one port");
    }
}
