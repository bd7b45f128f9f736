using System.Net;
using Mesh.Traversal.PortMapping;
using Mesh.WireGuard.Core;

namespace Mesh.Traversal.Paths;

/// <summary>
/// The router's port mapping for socket 0 (<see cref="PortMapState"/>): a mapped port is published as a candidate
/// of its own, since the router forwards it unsolicited and peers behind any NAT reach it.
/// </summary>
public sealed partial class PathEngine
{
    private readonly PortMapState _portMap;
    private int _listenPort;

    /// <summary>The default gateway and this host's address toward it, or null without one: a new gateway gets a new mapping.</summary>
    public void SetGateway(IPAddress? gateway, IPAddress? source)
    {
        lock (_gate)
        {
            if (_portMap.SetGateway(gateway, source, _clock.Now)) PublishEndpointsIfChanged();
        }
    }

    /// <summary>What the host's UPnP-IGD client holds: a mapping and its expiry (null for a permanent one), or why it has none.</summary>
    public void SetUpnpMapping(NetEndpoint? external, DateTime? expiresUtc, string? failure)
    {
        lock (_gate)
        {
            _portMap.SetUpnp(external, expiresUtc, failure);
            PublishEndpointsIfChanged();
        }
    }

    /// <summary>What the router mapped, and how; else why nothing holds. Null when there is no gateway to ask or port mapping is off.</summary>
    public PortMapStatus? PortMapping
    {
        get
        {
            lock (_gate) return _portMap.Status(_clock.Now, _clock.UtcNow);
        }
    }

    /// <summary>True when PCP and NAT-PMP have both been tried and neither holds a mapping: the host may try UPnP.</summary>
    public bool PortMapUnavailable
    {
        get
        {
            lock (_gate) return _portMap.Unavailable(_clock.Now);
        }
    }

    /// <summary>`mesh-agent down`: the next tick deletes the mapping at the router.</summary>
    public void ReleasePortMapping()
    {
        lock (_gate)
        {
            _portMap.Release();
            PublishEndpointsIfChanged();
        }
    }

    /// <summary>This node's mapped public endpoint, whichever protocol made it.</summary>
    private NetEndpoint? MappedExternal => _portMap.Status(_clock.Now, _clock.UtcNow)?.External;

    private void TickPortMap(TimeSpan now)
    {
        var before = _portMap.OwnExternal;
        int length;
        while ((length = _portMap.Poll(now, _scratch, out var router)) > 0) _sockets.SendUdp(0, _scratch.AsSpan(0, length), router);
        if (_portMap.OwnExternal != before) PublishEndpointsIfChanged();
    }

    private void OnPortMapResponse(ReadOnlySpan<byte> datagram, TimeSpan now)
    {
        if (!_portMap.OnResponse(datagram, now, out var changed)) Interlocked.Increment(ref _strayDatagrams);
        else if (changed) PublishEndpointsIfChanged();
    }
}
