using System.Net;
using Mesh.NatLab.Lab;
using Mesh.NatLab.Net;
using Mesh.NatLab.Sim;
using Mesh.Traversal.Paths;

namespace Mesh.NatLab.Scenarios;

/// <summary>The virtual internet of one scenario: a backbone with the coordinator on it, and sites added by profile.</summary>
public sealed class World : IDisposable
{
    private int _nextPublic = 10;
    private int _nextSite = 1;
    private int _nextSeed;
    private int _nextIPv6 = 1;

    public World(int seed)
    {
        Scheduler = new Scheduler();
        Network = new Network(Scheduler, seed);
        _nextSeed = seed * 1000;
        Internet = new Segment(Network, "internet", routed: true);
        var coordinatorHost = new LabHost("coordinator", Internet, IPAddress.Parse("203.0.113.1"), Link.Backbone);
        coordinatorHost.Attach();
        Coordinator = new LabCoordinator(Network, coordinatorHost, Path.Combine(Path.GetTempPath(), $"natlab-{Environment.ProcessId}-{Guid.NewGuid():N}"));
        Coordinator.Start();
    }

    public Scheduler Scheduler { get; }
    public Network Network { get; }
    public Segment Internet { get; }
    public LabCoordinator Coordinator { get; }
    public List<LabAgent> Agents { get; } = new();

    public IPAddress NextPublicAddress() => IPAddress.Parse($"198.51.100.{_nextPublic++}");

    /// <summary>A home (or carrier) network behind a NAT box; returns the inside segment and the box.</summary>
    public (Segment Inside, NatBox Nat) AddNat(string name, NatBehavior behavior, Segment outside, Link uplink, IPAddress? outsideAddress = null)
    {
        var inside = new Segment(Network, name);
        var nat = new NatBox(name, behavior, outside, outsideAddress ?? NextPublicAddress(), uplink, inside);
        return (inside, nat);
    }

    public IPAddress NextSiteAddress(string prefix = "192.168") => IPAddress.Parse($"{prefix}.{_nextSite++}.2");

    /// <summary>A site's routed IPv6 host address (2001:db8:N::10) and its router's address on the internet.</summary>
    public (IPAddress Host, IPAddress Router) NextIPv6Site()
    {
        var site = _nextIPv6++;
        return (IPAddress.Parse($"2001:db8:{site}::10"), IPAddress.Parse($"2001:db8:ffff::{site}"));
    }

    public LabAgent AddAgent(string name, Segment segment, IPAddress address, Link link, PathOptions options)
    {
        if (segment != Internet)
        {
            var bytes = address.GetAddressBytes();
            bytes[^1] = 1;
            segment.GatewayAddress = new IPAddress(bytes);
        }
        var host = new LabHost(name, segment, address, link);
        host.Attach();
        var agent = new LabAgent(name, host, Coordinator, _nextSeed++, options);
        Agents.Add(agent);
        return agent;
    }

    public void Dispose() => Coordinator.Dispose();
}
