using System.Net;
using Mesh.WireGuard.Core;

namespace Mesh.NatLab.Net;

/// <summary>RFC 4787's three choices, for mapping and for filtering alike.</summary>
public enum NatScope
{
    EndpointIndependent,
    AddressDependent,
    AddressAndPortDependent,
}

public enum PortAllocation
{
    /// <summary>Keep the inside port when it is free (Linux MASQUERADE's habit).</summary>
    Preserving,
    Sequential,
    /// <summary>A random port per mapping (`--random-fully`, many carrier NATs).</summary>
    Random,
}

/// <summary>How a NAT box behaves. <see cref="Translates"/> false makes it a stateful firewall in front of public addresses.</summary>
public sealed record NatBehavior
{
    public NatScope Mapping { get; init; } = NatScope.EndpointIndependent;
    public NatScope Filtering { get; init; } = NatScope.AddressAndPortDependent;
    public PortAllocation Ports { get; init; } = PortAllocation.Preserving;
    public TimeSpan MappingTimeout { get; init; } = TimeSpan.FromSeconds(120);
    public bool Hairpinning { get; init; }
    public bool Translates { get; init; } = true;
    public bool BlocksUdp { get; init; }

    /// <summary>
    /// Linux conntrack: an unsolicited inbound datagram leaves a flow, and a later mapping toward that same
    /// remote avoids the port the datagram hit (it would clash), so a preserved port is lost for that peer.
    /// </summary>
    public bool UnsolicitedFlowsClash { get; init; } = true;
}

/// <summary>
/// A NAT between an inside segment and an outside one, per RFC 4787: mappings chosen by the mapping
/// scope, ports by the allocation rule, inbound datagrams admitted by the filtering scope, everything
/// forgotten after the mapping timeout without traffic. Refreshed by traffic in both directions, as
/// Linux conntrack does.
/// </summary>
public sealed class NatBox : INetNode
{
    private const int LowestPort = 1024;
    private readonly Network _network;
    private readonly Segment _outside;
    private readonly Segment _inside;
    private readonly Link _uplink;
    private readonly Dictionary<(NetEndpoint Inside, IPAddress? Address, int Port), Mapping> _byFlow = new();
    private readonly Dictionary<int, Mapping> _byPort = new();
    private readonly Dictionary<(NetEndpoint Remote, int Port), TimeSpan> _unsolicited = new();
    private static readonly TimeSpan UnrepliedTimeout = TimeSpan.FromSeconds(30);
    private int _nextPort = 20000;

    public NatBox(string name, NatBehavior behavior, Segment outside, IPAddress outsideAddress, Link uplink, Segment inside)
    {
        Name = name;
        Behavior = behavior;
        _network = outside.Network;
        _outside = outside;
        _inside = inside;
        _uplink = uplink;
        OutsideAddress = outsideAddress;
        inside.Gateway = FromInside;
        outside.Attach(outsideAddress, this, uplink);
    }

    public string Name { get; }
    public NatBehavior Behavior { get; set; }
    public IPAddress OutsideAddress { get; }
    public long Dropped { get; private set; }

    /// <summary>A firewall routes the public addresses behind it: the outside segment must send them here.</summary>
    public void RouteInsideAddress(IPAddress address) => _outside.Attach(address, this, _uplink);

    private TimeSpan Now => _network.Scheduler.Now;

    private void FromInside(Datagram datagram)
    {
        if (Behavior.BlocksUdp || datagram.AfterHop() is not { } hopped)
        {
            Drop();
            return;
        }
        datagram = hopped;
        if (Behavior.Translates && datagram.Destination.Address.Equals(OutsideAddress))
        {
            if (!Behavior.Hairpinning)
            {
                Drop();
                return;
            }
            var hairpin = Outbound(datagram);
            Deliver(datagram with { Source = new NetEndpoint(OutsideAddress, hairpin.ExternalPort) });
            return;
        }
        var mapping = Outbound(datagram);
        var source = Behavior.Translates ? new NetEndpoint(OutsideAddress, mapping.ExternalPort) : datagram.Source;
        _outside.Send(datagram with { Source = source }, _uplink);
    }

    public void Deliver(Datagram datagram)
    {
        if (Behavior.BlocksUdp)
        {
            Drop();
            return;
        }
        var mapping = Inbound(datagram.Destination);
        if (mapping is null && Behavior.UnsolicitedFlowsClash) _unsolicited[(datagram.Source, datagram.Destination.Port)] = Now;
        if (mapping is null || !mapping.Admits(datagram.Source, Behavior.Filtering, Now, Behavior.MappingTimeout))
        {
            _network.Filtered++;
            Drop();
            return;
        }
        mapping.LastUsed = Now;
        _inside.SendFromGateway(datagram with { Destination = mapping.Inside });
    }

    private Mapping Outbound(Datagram datagram)
    {
        var flow = !Behavior.Translates ? (datagram.Source, null, 0) : Behavior.Mapping switch
        {
            NatScope.EndpointIndependent => (datagram.Source, (IPAddress?)null, 0),
            NatScope.AddressDependent => (datagram.Source, datagram.Destination.Address, 0),
            _ => (datagram.Source, datagram.Destination.Address, datagram.Destination.Port),
        };
        if (!_byFlow.TryGetValue(flow, out var mapping) || Expired(mapping))
        {
            if (mapping is not null) Forget(mapping);
            var port = Behavior.Translates ? AllocatePort(datagram.Source.Port, datagram.Destination) : datagram.Source.Port;
            mapping = new Mapping(datagram.Source, port, flow);
            _byFlow[flow] = mapping;
            if (Behavior.Translates) _byPort[port] = mapping;
        }
        mapping.LastUsed = Now;
        mapping.Permit(datagram.Destination, Now);
        return mapping;
    }

    private Mapping? Inbound(NetEndpoint destination)
    {
        if (!Behavior.Translates)
        {
            // A firewall: the destination is the inside host itself; any flow it opened may admit the datagram.
            return _byFlow.TryGetValue((destination, null, 0), out var flow) && !Expired(flow) ? flow : null;
        }
        if (!destination.Address.Equals(OutsideAddress) || !_byPort.TryGetValue(destination.Port, out var mapping)) return null;
        if (!Expired(mapping)) return mapping;
        Forget(mapping);
        return null;
    }

    private bool Expired(Mapping mapping) => Now - mapping.LastUsed > Behavior.MappingTimeout;

    private void Forget(Mapping mapping)
    {
        _byFlow.Remove(mapping.Flow);
        if (Behavior.Translates) _byPort.Remove(mapping.ExternalPort);
    }

    private int AllocatePort(int insidePort, NetEndpoint destination)
    {
        var clash = _unsolicited.TryGetValue((destination, insidePort), out var seen) && Now - seen < UnrepliedTimeout;
        if (Behavior.Ports == PortAllocation.Preserving && !clash && !_byPort.ContainsKey(insidePort)) return insidePort;
        while (true)
        {
            var port = Behavior.Ports == PortAllocation.Random
                ? LowestPort + _network.Random.Next(65536 - LowestPort)
                : _nextPort++;
            if (_nextPort > 65535) _nextPort = LowestPort;
            if (!_byPort.TryGetValue(port, out var taken) || Expired(taken))
            {
                if (taken is not null) Forget(taken);
                return port;
            }
        }
    }

    private void Drop() => Dropped++;

    private sealed class Mapping(NetEndpoint inside, int externalPort, (NetEndpoint, IPAddress?, int) flow)
    {
        private readonly Dictionary<NetEndpoint, TimeSpan> _permitted = new();

        public NetEndpoint Inside { get; } = inside;
        public int ExternalPort { get; } = externalPort;
        public (NetEndpoint, IPAddress?, int) Flow { get; } = flow;
        public TimeSpan LastUsed { get; set; }

        public void Permit(NetEndpoint remote, TimeSpan now) => _permitted[remote] = now;

        public bool Admits(NetEndpoint remote, NatScope filtering, TimeSpan now, TimeSpan timeout)
        {
            if (filtering == NatScope.EndpointIndependent) return true;
            foreach (var (permitted, at) in _permitted)
            {
                if (now - at > timeout) continue;
                if (permitted.Address.Equals(remote.Address) && (filtering == NatScope.AddressDependent || permitted.Port == remote.Port)) return true;
            }
            return false;
        }
    }
}
