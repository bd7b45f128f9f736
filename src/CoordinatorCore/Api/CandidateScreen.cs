using System.Net;
using System.Net.Sockets;
using Mesh.Protos.V1;

namespace Mesh.Coordinator.Api;

/// <summary>
/// Drops what a sync stream cannot vouch for. Where the stream comes from a public address, that is the agent's
/// public address as the internet sees it: a STUN or port-mapping candidate of that family must carry it (one
/// naming anyone else's address would aim the mesh's probes at them), and of the other family, which cannot be
/// checked, one of each kind is kept. From a private or loopback address (agents on the coordinator's own network,
/// a TLS proxy in front) nothing can be checked; the agents' probe budget bounds what such candidates cost.
/// </summary>
internal static class CandidateScreen
{
    /// <summary>Removes the candidates the source cannot vouch for; how many.</summary>
    public static int Screen(Endpoints endpoints, IPAddress? source)
    {
        if (source is null || !IsPublic(source)) return 0;
        var otherFamily = new HashSet<CandidateKind>();
        var kept = new List<Candidate>(endpoints.Candidates.Count);
        foreach (var candidate in endpoints.Candidates)
        {
            if (candidate.Kind is CandidateKind.Stun or CandidateKind.Portmap)
            {
                var address = IPEndPoint.Parse(candidate.Address).Address;
                if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
                if (address.AddressFamily == source.AddressFamily ? !address.Equals(source) : !otherFamily.Add(candidate.Kind)) continue;
            }
            kept.Add(candidate);
        }
        var dropped = endpoints.Candidates.Count - kept.Count;
        endpoints.Candidates.Clear();
        endpoints.Candidates.AddRange(kept);
        return dropped;
    }

    /// <summary>The address of a call's peer as gRPC names it ("ipv4:1.2.3.4:5" or "ipv6:[::1]:5"), or null.</summary>
    public static IPAddress? SourceOf(string? peer)
    {
        var colon = peer?.IndexOf(':') ?? -1;
        if (colon < 0 || !IPEndPoint.TryParse(peer![(colon + 1)..], out var endpoint)) return null;
        return endpoint.Address.IsIPv4MappedToIPv6 ? endpoint.Address.MapToIPv4() : endpoint.Address;
    }

    /// <summary>Not loopback, private (RFC 1918, RFC 6598 shared, ULA) or link-local: an address the internet routes.</summary>
    public static bool IsPublic(IPAddress address)
    {
        if (IPAddress.IsLoopback(address) || address.IsIPv6LinkLocal || address.IsIPv6UniqueLocal || address.IsIPv6SiteLocal) return false;
        if (address.AddressFamily != AddressFamily.InterNetwork) return true;
        return address.GetAddressBytes() switch
        {
            [0, ..] or [10, ..] or [127, ..] or [169, 254, ..] or [192, 168, ..] => false,
            [172, >= 16 and <= 31, ..] or [100, >= 64 and <= 127, ..] => false,
            _ => true,
        };
    }
}
