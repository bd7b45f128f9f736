using System.Net;
using Mesh.Traversal.PortMapping;
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

    /// <summary>The router maps ports on request (a PCP server at its inside address, as miniupnpd is).</summary>
    public bool PortMapping { get; init; }

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
    private readonly Dictionary<NetEndpoint, Mapping> _pinned = new();
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

    /// <summary>The router's own address on its inside segment: the hosts' gateway, and where its PCP server listens.</summary>
    private IPAddress? InsideAddress => _inside.GatewayAddress;

    /// <summary>A firewall routes the public addresses behind it: the outside segment must send them here.</summary>
    public void RouteInsideAddress(IPAddress address) => _outside.Attach(address, this, _uplink);

    private TimeSpan Now => _network.Scheduler.Now;

    private void FromInside(Datagram datagram)
    {
        if (InsideAddress is { } self && datagram.Destination.Address.Equals(self))
        {
            if (Behavior.PortMapping && datagram.Destination.Port == PcpMessage.Port) AnswerPcp(datagram);
            else Drop();
            return;
        }
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
        // A pinned port admits anyone (that is what it was asked for), and remembers them for the replies.
        if (mapping?.PinnedUntil is not null) mapping.Permit(datagram.Source, Now);
        else if (mapping is not null && !mapping.Admits(datagram.Source, Behavior.Filtering, Now, Behavior.MappingTimeout)) mapping = null;
        if (mapping is null)
        {
            _network.Filtered++;
            Drop();
            return;
        }
        mapping.LastUsed = Now;
        _inside.SendFromGateway(datagram with { Destination = mapping.Inside });
    }

    /// <summary>
    /// A PCP MAP request: pins an external port (the suggested one when free) to the asking host's port until the
    /// lifetime ends; lifetime 0 deletes it. Only the host itself may ask for its own ports, as miniupnpd's secure mode.
    /// </summary>
    private void AnswerPcp(Datagram datagram)
    {
        if (!PcpMessage.TryReadMapRequest(datagram.Payload, out var request))
        {
            Drop();
            return;
        }
        var inside = new NetEndpoint(datagram.Source.Address, request.InternalPort);
        byte result = PcpMessage.Success;
        var external = default(NetEndpoint);
        if (!request.Client.Equals(datagram.Source.Address)) result = 12;
        else if (request.Lifetime == 0)
        {
            if (_pinned.Remove(inside, out var gone)) Forget(gone);
        }
        else
        {
            if (!_pinned.TryGetValue(inside, out var pinned))
            {
                // The suggested port when it is free or already this host's (its own outbound mapping), as miniupnpd does.
                var suggested = request.SuggestedPort != 0 && (!_byPort.TryGetValue(request.SuggestedPort, out var holder) || holder.Inside == inside || Expired(holder));
                pinned = new Mapping(inside, suggested ? request.SuggestedPort : AllocatePort(request.InternalPort, default), (inside, null, -1));
                _pinned[inside] = pinned;
            }
            _byPort[pinned.ExternalPort] = pinned;
            pinned.PinnedUntil = Now + TimeSpan.FromSeconds(request.Lifetime);
            external = new NetEndpoint(OutsideAddress, pinned.ExternalPort);
        }
        var response = new byte[PcpMessage.MapLength];
        PcpMessage.WriteMapResponse(response, request, result, request.Lifetime, (uint)Now.TotalSeconds, external);
        _inside.SendFromGateway(new Datagram(datagram.Destination, datagram.Source, response));
    }

    private Mapping Outbound(Datagram datagram)
    {
        // Replies to a peer that came in through a pinned port leave through it (Linux conntrack's reply direction).
        if (_pinned.TryGetValue(datagram.Source, out var pinnedPort) && !Expired(pinnedPort) && pinnedPort.Admits(datagram.Destination, NatScope.AddressAndPortDependent, Now, Behavior.MappingTimeout))
        {
            pinnedPort.LastUsed = Now;
            return pinnedPort;
        }
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

    private bool Expired(Mapping mapping) => mapping.PinnedUntil is { } until ? Now >= until : Now - mapping.LastUsed > Behavior.MappingTimeout;

    private void Forget(Mapping mapping)
    {
        _byFlow.Remove(mapping.Flow);
        // A pinned port may have taken over the external port of this host's own outbound mapping.
        if (Behavior.Translates && _byPort.TryGetValue(mapping.ExternalPort, out var holder) && holder == mapping) _byPort.Remove(mapping.ExternalPort);
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

        /// <summary>A port pinned by PCP: it lives until then, whatever the traffic, and admits anyone.</summary>
        public TimeSpan? PinnedUntil { get; set; }

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
