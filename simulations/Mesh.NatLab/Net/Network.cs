using System.Net;
using Mesh.NatLab.Sim;
using Mesh.WireGuard.Core;

namespace Mesh.NatLab.Net;

/// <summary>A UDP datagram on the virtual wire. Lab code may allocate: only the production code has to be lean.</summary>
/// <summary>A UDP datagram on the virtual wire; <paramref name="Ttl"/> counts the routers it may still cross (0: no limit). Lab code may allocate.</summary>
public sealed record Datagram(NetEndpoint Source, NetEndpoint Destination, byte[] Payload, int Ttl = 0)
{
    /// <summary>The datagram after one more router, or null when its hop limit runs out there.</summary>
    public Datagram? AfterHop() => Ttl == 0 ? this : Ttl == 1 ? null : this with { Ttl = Ttl - 1 };
}

/// <summary>One hop's behaviour: fixed latency, uniform jitter on top, and independent loss.</summary>
public sealed record Link(TimeSpan Latency, TimeSpan Jitter = default, double Loss = 0)
{
    public static readonly Link Lan = new(TimeSpan.FromMilliseconds(0.5));
    public static readonly Link Access = new(TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(1));
    public static readonly Link Backbone = new(TimeSpan.FromMilliseconds(5));

    /// <summary>Mutable so a fault scenario can degrade a link mid-run.</summary>
    public double ExtraLoss { get; set; }
}

/// <summary>Anything with an address on a segment: a host, or the outside of a NAT box.</summary>
public interface INetNode
{
    void Deliver(Datagram datagram);
}

/// <summary>The virtual internet's shared state: time, the seeded randomness every delay and drop comes from, counters.</summary>
public sealed class Network(Scheduler scheduler, int seed)
{
    public Scheduler Scheduler { get; } = scheduler;
    public Random Random { get; } = new(seed);
    public long Delivered { get; private set; }
    public long Lost { get; private set; }
    public long Filtered { get; set; }
    public long Expired { get; set; }
    public long Unroutable { get; set; }

    /// <summary>Carries a datagram across two hops (sender's and receiver's links), or loses it.</summary>
    public void Carry(Datagram datagram, Link from, Link to, Action<Datagram> arrive)
    {
        if (Drops(from) || Drops(to))
        {
            Lost++;
            return;
        }
        var delay = from.Latency + to.Latency + Jitter(from) + Jitter(to);
        Scheduler.After(delay, () =>
        {
            Delivered++;
            arrive(datagram);
        });
    }

    private bool Drops(Link link)
    {
        var loss = link.Loss + link.ExtraLoss;
        return loss > 0 && Random.NextDouble() < loss;
    }

    private TimeSpan Jitter(Link link) => link.Jitter <= TimeSpan.Zero ? TimeSpan.Zero : TimeSpan.FromTicks((long)(Random.NextDouble() * link.Jitter.Ticks));
}

/// <summary>One broadcast-free L3 network: members by address, and a gateway for everything else.</summary>
public sealed class Segment(Network network, string name, bool routed = false)
{
    private readonly Dictionary<IPAddress, (INetNode Node, Link Link)> _members = new();

    public string Name { get; } = name;
    public Network Network { get; } = network;

    /// <summary>Where datagrams for addresses outside the segment go (the NAT box of a home or carrier network).</summary>
    public Action<Datagram>? Gateway { get; set; }

    /// <summary>The gateway's own address on this segment (x.y.z.1 of its hosts): what hosts ask for port mappings.</summary>
    public IPAddress? GatewayAddress { get; set; }
    public Link GatewayLink { get; set; } = Link.Lan;

    public void Attach(IPAddress address, INetNode node, Link link) => _members[address] = (node, link);

    public void Detach(IPAddress address) => _members.Remove(address);

    public void Send(Datagram datagram, Link from)
    {
        // The internet is a router between sites: crossing it costs a hop.
        if (routed)
        {
            if (datagram.AfterHop() is not { } hopped)
            {
                Network.Expired++;
                return;
            }
            datagram = hopped;
        }
        if (_members.TryGetValue(datagram.Destination.Address, out var member))
        {
            Network.Carry(datagram, from, member.Link, member.Node.Deliver);
        }
        else if (Gateway is { } gateway)
        {
            Network.Carry(datagram, from, GatewayLink, gateway);
        }
        else
        {
            Network.Unroutable++;
        }
    }

    /// <summary>The gateway hands a datagram to a member (after translating it on the way in).</summary>
    public void SendFromGateway(Datagram datagram) => Send(datagram, GatewayLink with { Latency = TimeSpan.Zero, Jitter = TimeSpan.Zero });
}

/// <summary>A machine with an IPv4 address (and, dual-stacked, an IPv6 one on a segment of its own): sockets are ports with a receive callback.</summary>
public sealed class LabHost(string name, Segment segment, IPAddress address, Link link) : INetNode
{
    private readonly Dictionary<int, Action<Datagram>> _sockets = new();

    public string Name { get; } = name;
    public Segment Segment { get; private set; } = segment;
    public IPAddress Address { get; private set; } = address;
    // A copy of its own: a fault scenario degrades this host's link alone, not every link built from the same template.
    public Link Link { get; private set; } = link with { };

    /// <summary>The IPv6 address of a dual-stack host, and the segment it is on; null for IPv4 only.</summary>
    public IPAddress? IPv6 { get; private set; }
    private Segment? _ipv6Segment;

    /// <summary>Every address the host has: what the agent offers as its own candidates.</summary>
    public IReadOnlyList<IPAddress> Addresses => IPv6 is { } v6 ? [Address, v6] : [Address];

    public void Attach() => Segment.Attach(Address, this, Link);

    /// <summary>Gives the host routed IPv6 beside its IPv4 (a home whose router routes a /64).</summary>
    public void AddIPv6(Segment segment, IPAddress address)
    {
        _ipv6Segment = segment;
        IPv6 = address;
        segment.Attach(address, this, Link);
    }

    public bool Bind(int port, Action<Datagram> receive) => _sockets.TryAdd(port, receive);

    public void Unbind(int port) => _sockets.Remove(port);

    /// <summary>A datagram with a forged source address, as an attacker on the path would send it.</summary>
    public void SendSpoofed(NetEndpoint source, NetEndpoint to, ReadOnlySpan<byte> payload) =>
        Segment.Send(new Datagram(source, to, payload.ToArray()), Link);

    public void Send(int fromPort, NetEndpoint to, ReadOnlySpan<byte> payload, int ttl = 0)
    {
        if (to.IsIPv4)
        {
            Segment.Send(new Datagram(new NetEndpoint(Address, fromPort), to, payload.ToArray(), ttl), Link);
            return;
        }
        // An IPv4-only host has no route to an IPv6 address (the kernel's ENETUNREACH).
        if (_ipv6Segment is null || IPv6 is null)
        {
            Segment.Network.Unroutable++;
            return;
        }
        _ipv6Segment.Send(new Datagram(new NetEndpoint(IPv6, fromPort), to, payload.ToArray(), ttl), Link);
    }

    public void Deliver(Datagram datagram)
    {
        if (_sockets.TryGetValue(datagram.Destination.Port, out var receive)) receive(datagram);
    }

    /// <summary>Moves the machine to another network (a laptop changing Wi-Fi): its old address stops working at once.</summary>
    public void MoveTo(Segment segment, IPAddress address, Link link)
    {
        Segment.Detach(Address);
        Segment = segment;
        Address = address;
        Link = link with { };
        Attach();
    }
}
