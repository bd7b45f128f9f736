namespace Mesh.NatLab.Scenarios;

/// <summary>
/// A lab cell rebuilt on real Linux networks (namespaces, iptables, miniupnpd) by the integration test
/// <c>LabTwinTests</c>, which asserts the cell's expected outcome in every run. <see cref="Measured"/> is
/// what the twin showed when it was last recorded here, from the first side's view.
/// </summary>
public sealed record Twin(Profile A, Profile B, string Variant, string RealNetwork, string Measured);

public static class Twins
{
    public const string RecordedOn = "2026-12-02, 2 cores, Debian 12";

    public static readonly IReadOnlyList<Twin> All =
    [
        new(Profiles.Public, Profiles.PortRestricted, "", "a public host; MASQUERADE", "direct (peer-reflexive), first packet 524 ms, direct 1475 ms"),
        new(Profiles.PortRestricted, Profiles.PortRestricted, "", "MASQUERADE on both routers, no input firewall", "direct (stun), first packet 1174 ms, direct 1829 ms"),
        new(Profiles.PortRestricted, Profiles.PortRestricted, "input firewall", "MASQUERADE, new inbound to the routers dropped", "direct (stun), first packet 327 ms, direct 919 ms"),
        new(Profiles.Symmetric, Profiles.PortRestricted, "", "MASQUERADE --random-fully; MASQUERADE", "direct (birthday), first packet 334 ms, direct 1992 ms"),
        new(Profiles.Symmetric, Profiles.Symmetric, "", "MASQUERADE --random-fully on both", "relayed over UDP, first packet 446 ms"),
        new(Profiles.Symmetric, Profiles.PortMapping, "", "--random-fully on both; miniupnpd (PCP) on the second", "direct (portmap), first packet 330 ms, direct 930 ms"),
        new(Profiles.IPv6, Profiles.IPv6, "", "--random-fully for IPv4 on both; routed IPv6 behind stateful ip6tables", "direct (local) over IPv6, first packet 432 ms, direct 1280 ms"),
        new(Profiles.Cgnat, Profiles.PortRestricted, "", "MASQUERADE behind a carrier's MASQUERADE; MASQUERADE", "direct (stun), first packet 336 ms, direct 1075 ms"),
        new(Profiles.Firewall, Profiles.PortRestricted, "", "a routed public LAN behind a stateful FORWARD firewall; MASQUERADE", "direct (stun), first packet 320 ms, direct 890 ms"),
        new(Profiles.PortRestricted, Profiles.UdpBlocked, "", "MASQUERADE; a router that forwards no UDP", "relayed (the blocked side over TCP), first packet 2081 ms"),
    ];
}
