using System.Net;
using Mesh.Traversal.PortMapping;
using Mesh.WireGuard.Core;

namespace Mesh.Traversal.Paths;

/// <summary>
/// The router's port mapping for socket 0: PCP or NAT-PMP spoken from socket 0 itself (the mapped port is
/// the one the request describes), or a mapping the host made over UPnP-IGD. A mapped port is published as
/// a candidate of its own: peers behind any NAT reach it, since the router forwards it unsolicited.
/// </summary>
public sealed partial class PathEngine
{
    private PortMapClient? _portMap;
    private (IPAddress Gateway, IPAddress Source)? _gateway;
    private int _listenPort;
    private (NetEndpoint? External, DateTime? ExpiresUtc, string? Failure)? _upnp;

    /// <summary>
    /// The default gateway and this host's address toward it (the source PCP requires in the request), or
    /// null without one. A new gateway gets a new mapping; the old gateway is gone with its network.
    /// </summary>
    public void SetGateway(IPAddress? gateway, IPAddress? source)
    {
        lock (_gate)
        {
            var wanted = gateway is not null && source is not null ? (gateway, source) : ((IPAddress, IPAddress)?)null;
            if (Nullable.Equals(wanted, _gateway)) return;
            _gateway = wanted;
            RestartPortMap();
        }
    }

    /// <summary>
    /// What the host's UPnP-IGD client holds: a mapping and its expiry (null for a permanent one), or why it
    /// has none. PCP and NAT-PMP take precedence when both hold.
    /// </summary>
    public void SetUpnpMapping(NetEndpoint? external, DateTime? expiresUtc, string? failure)
    {
        lock (_gate)
        {
            _upnp = (external, expiresUtc, failure);
            PublishEndpointsIfChanged();
        }
    }

    /// <summary>
    /// What the router mapped, and how: PCP or NAT-PMP when they hold a mapping, else UPnP's; else why
    /// neither holds. Null when there is no gateway to ask or port mapping is off.
    /// </summary>
    public PortMapStatus? PortMapping
    {
        get
        {
            lock (_gate) return CurrentPortMap(_clock.Now);
        }
    }

    /// <summary>True when PCP and NAT-PMP have both been tried and neither holds a mapping: the host may try UPnP.</summary>
    public bool PortMapUnavailable
    {
        get
        {
            lock (_gate) return _portMap?.Status(_clock.Now).State == "unavailable";
        }
    }

    /// <summary>`mesh-agent down`: the next tick deletes the mapping at the router.</summary>
    public void ReleasePortMapping()
    {
        lock (_gate)
        {
            _portMap?.Release();
            _upnp = null;
            PublishEndpointsIfChanged();
        }
    }

    private PortMapStatus? CurrentPortMap(TimeSpan now)
    {
        var own = _portMap?.Status(now);
        if (own?.External is not null || _upnp is not { } upnp) return own;
        if (upnp.External is { } external) return new PortMapStatus(PortMapProtocol.Upnp, external, "mapped", null, upnp.ExpiresUtc - _clock.UtcNow);
        if (own is null) return null;
        return own with { Failure = upnp.Failure is null ? own.Failure : $"{own.Failure}; UPnP: {upnp.Failure}" };
    }

    /// <summary>This node's mapped public endpoint, whichever protocol made it.</summary>
    private NetEndpoint? MappedExternal => CurrentPortMap(_clock.Now)?.External;

    private void RestartPortMap()
    {
        _portMap = Options.PortMapping && _gateway is { } gateway && _listenPort != 0
            ? new PortMapClient(gateway.Gateway, gateway.Source, _listenPort, _entropy, _clock.Now)
            : null;
        PublishEndpointsIfChanged();
    }

    private void TickPortMap(TimeSpan now)
    {
        if (_portMap is not { } client) return;
        var before = client.External;
        int length;
        while ((length = client.Poll(now, _scratch)) > 0) _output.SendUdp(0, _scratch.AsSpan(0, length), client.Server);
        if (client.External != before) PublishEndpointsIfChanged();
    }

    private void OnPortMapResponse(PortMapClient client, ReadOnlySpan<byte> datagram, TimeSpan now)
    {
        var before = client.External;
        if (!client.OnResponse(datagram, now)) Interlocked.Increment(ref _strayDatagrams);
        else if (client.External != before) PublishEndpointsIfChanged();
    }
}
