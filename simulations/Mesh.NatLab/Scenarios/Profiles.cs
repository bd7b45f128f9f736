using Mesh.NatLab.Lab;
using Mesh.NatLab.Net;
using Mesh.Traversal.Paths;

namespace Mesh.NatLab.Scenarios;

/// <summary>A kind of network an agent can sit in, built into a world.</summary>
public sealed record Profile(string Name, string Description, Func<World, string, PathOptions, LabAgent> Build)
{
    public override string ToString() => Name;
}

public static class Profiles
{
    public static readonly Profile Public = new("public", "a public address, no NAT, no firewall",
        (world, name, options) => world.AddAgent(name, world.Internet, world.NextPublicAddress(), Link.Access, options));

    public static readonly Profile FullCone = Home("full-cone", "endpoint-independent mapping and filtering",
        new NatBehavior { Filtering = NatScope.EndpointIndependent });

    public static readonly Profile RestrictedCone = Home("restricted-cone", "endpoint-independent mapping, address-dependent filtering",
        new NatBehavior { Filtering = NatScope.AddressDependent });

    public static readonly Profile PortRestricted = Home("port-restricted", "endpoint-independent mapping, address-and-port-dependent filtering (the common home router)",
        new NatBehavior());

    public static readonly Profile Symmetric = Home("symmetric", "address-and-port-dependent mapping with random ports (the hard NAT)",
        new NatBehavior { Mapping = NatScope.AddressAndPortDependent, Ports = PortAllocation.Random });

    public static readonly Profile PortMapping = Home("portmap", "the hard NAT on a router that maps ports on request (PCP, as miniupnpd answers it)",
        new NatBehavior { Mapping = NatScope.AddressAndPortDependent, Ports = PortAllocation.Random, PortMapping = true });

    public static readonly Profile IPv6 = new("ipv6", "the hard NAT for IPv4, with routed IPv6 behind the router's stateful firewall (replies and what the LAN starts pass)",
        (world, name, options) =>
        {
            var (inside, _) = world.AddNat($"{name}-ipv4", new NatBehavior { Mapping = NatScope.AddressAndPortDependent, Ports = PortAllocation.Random }, world.Internet, Link.Access);
            var agent = world.AddAgent(name, inside, world.NextSiteAddress(), Link.Lan, options);
            var (address, router) = world.NextIPv6Site();
            var (inside6, firewall) = world.AddNat($"{name}-ipv6", new NatBehavior { Translates = false }, world.Internet, Link.Access, router);
            firewall.RouteInsideAddress(address);
            agent.Host.AddIPv6(inside6, address);
            return agent;
        });

    public static readonly Profile Cgnat = new("cgnat", "a port-restricted home router behind a carrier NAT (endpoint-independent, sequential ports)",
        (world, name, options) =>
        {
            var (carrier, _) = world.AddNat($"{name}-cgnat", new NatBehavior { Ports = PortAllocation.Sequential }, world.Internet, Link.Backbone);
            var (home, _) = world.AddNat($"{name}-home", new NatBehavior(), carrier, Link.Access, world.NextSiteAddress("100.64"));
            return world.AddAgent(name, home, world.NextSiteAddress(), Link.Lan, options);
        });

    public static readonly Profile Firewall = new("firewall", "a public address behind a stateful firewall that drops unsolicited inbound UDP",
        (world, name, options) =>
        {
            var address = world.NextPublicAddress();
            var (inside, firewall) = world.AddNat($"{name}-firewall", new NatBehavior { Translates = false }, world.Internet, Link.Access);
            firewall.RouteInsideAddress(address);
            return world.AddAgent(name, inside, address, Link.Lan, options);
        });

    public static readonly Profile UdpBlocked = Home("udp-blocked", "a network that blocks UDP entirely (TCP only)",
        new NatBehavior { BlocksUdp = true });

    public static readonly IReadOnlyList<Profile> All = [Public, FullCone, RestrictedCone, PortRestricted, Symmetric, PortMapping, IPv6, Cgnat, Firewall, UdpBlocked];

    private static Profile Home(string name, string description, NatBehavior behavior) => new(name, description, (world, agentName, options) =>
    {
        var (inside, _) = world.AddNat($"{agentName}-{name}", behavior, world.Internet, Link.Access);
        return world.AddAgent(agentName, inside, world.NextSiteAddress(), Link.Lan, options);
    });
}
