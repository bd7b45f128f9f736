namespace Mesh.NatLab.Scenarios;

/// <summary>
/// A lab cell rebuilt on real Linux networks (namespaces, iptables, nftables, miniupnpd) by the integration test
/// <c>LabTwinTests</c>, which asserts the cell's expected outcome in every run. <see cref="Measured"/> is
/// what the twin showed when it was last recorded here, from the first side's view.
/// </summary>
public sealed record Twin(Profile A, Profile B, string Variant, string RealNetwork, string Measured);

public static class Twins
{
    public const string RecordedOn = "2026-12-03, 2 cores, Debian 12";

    public static readonly IReadOnlyList<Twin> All =
    [
        new(Profiles.Public, Profiles.PortRestricted, "", "a public host; MASQUERADE", "direct (peer-reflexive), first packet 247 ms, direct 675 ms"),
        new(Profiles.FullCone, Profiles.Symmetric, "", "MASQUERADE and a DNAT of the mapped port to the agent (nftables); --random-fully", "direct (peer-reflexive), first packet 224 ms, direct 655 ms"),
        new(Profiles.RestrictedCone, Profiles.Symmetric, "", "MASQUERADE and a DNAT of the mapped port from addresses the agent sent to (nftables set); --random-fully", "direct (peer-reflexive), first packet 222 ms, direct 655 ms"),
        new(Profiles.PortRestricted, Profiles.PortRestricted, "", "MASQUERADE on both routers, no input firewall", "direct (stun), first packet 200 ms, direct 594 ms"),
        new(Profiles.PortRestricted, Profiles.PortRestricted, "input firewall", "MASQUERADE, new inbound to the routers dropped", "direct (stun), first packet 249 ms, direct 703 ms"),
        new(Profiles.Symmetric, Profiles.PortRestricted, "", "MASQUERADE --random-fully; MASQUERADE", "direct (birthday), first packet 232 ms, direct 4629 ms"),
        new(Profiles.Symmetric, Profiles.Symmetric, "", "MASQUERADE --random-fully on both", "relayed over UDP, first packet 230 ms"),
        new(Profiles.Symmetric, Profiles.PortMapping, "", "--random-fully on both; miniupnpd (PCP) on the second", "direct (portmap), first packet 230 ms, direct 752 ms"),
        new(Profiles.IPv6, Profiles.IPv6, "", "--random-fully for IPv4 on both; routed IPv6 behind stateful ip6tables", "direct (local) over IPv6, first packet 263 ms, direct 1178 ms"),
        new(Profiles.Cgnat, Profiles.PortRestricted, "input firewall", "MASQUERADE behind a carrier's MASQUERADE (new inbound to it dropped); MASQUERADE, new inbound to the router dropped", "direct (stun), first packet 235 ms, direct 648 ms"),
        new(Profiles.Firewall, Profiles.PortRestricted, "", "a routed public LAN behind a stateful FORWARD firewall; MASQUERADE", "direct (stun), first packet 236 ms, direct 739 ms"),
        new(Profiles.PortRestricted, Profiles.UdpBlocked, "", "MASQUERADE; a router that forwards no UDP", "relayed (the blocked side over TCP), first packet 2711 ms"),
    ];
}
