using System.Net;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;

namespace Mesh.Traversal.PortMapping;

/// <summary>
/// The router's port mapping for a node's main socket, without I/O: PCP or NAT-PMP spoken from that socket itself
/// (the mapped port is the one the request describes), or a mapping the host made over UPnP-IGD. PCP and NAT-PMP
/// take precedence when both hold. A new gateway or a new port gets a new mapping: the old gateway is gone with
/// its network. Methods that return a bool say whether the mapped endpoint (a candidate peers are told of) may
/// have changed. Not thread-safe: the path engine calls it under its lock.
/// </summary>
public sealed class PortMapState(bool enabled, IEntropy entropy)
{
    private PortMapClient? _client;
    private (IPAddress Gateway, IPAddress Source)? _gateway;
    private int _port;
    private (NetEndpoint? External, DateTime? ExpiresUtc, string? Failure)? _upnp;

    /// <summary>The default gateway and this host's address toward it (the source PCP requires), or null without one.</summary>
    public bool SetGateway(IPAddress? gateway, IPAddress? source, TimeSpan now)
    {
        var wanted = gateway is not null && source is not null ? (gateway, source) : ((IPAddress, IPAddress)?)null;
        if (Nullable.Equals(wanted, _gateway)) return false;
        _gateway = wanted;
        Restart(now);
        return true;
    }

    /// <summary>The socket's port (0: not bound yet); the mapping starts again for it, as it does on a new network.</summary>
    public void Restart(int port, TimeSpan now)
    {
        _port = port;
        Restart(now);
    }

    private void Restart(TimeSpan now) =>
        _client = enabled && _gateway is { } gateway && _port != 0 ? new PortMapClient(gateway.Gateway, gateway.Source, _port, entropy, now) : null;

    /// <summary>What the host's UPnP-IGD client holds: a mapping and its expiry (null for a permanent one), or why it has none.</summary>
    public void SetUpnp(NetEndpoint? external, DateTime? expiresUtc, string? failure) => _upnp = (external, expiresUtc, failure);

    /// <summary>What the router mapped, and how; else why nothing holds. Null when there is no gateway to ask or mapping is off.</summary>
    public PortMapStatus? Status(TimeSpan now, DateTime utcNow)
    {
        var own = _client?.Status(now);
        if (own?.External is not null || _upnp is not { } upnp) return own;
        if (upnp.External is { } external) return new PortMapStatus(PortMapProtocol.Upnp, external, "mapped", null, upnp.ExpiresUtc - utcNow);
        if (own is null) return null;
        return own with { Failure = upnp.Failure is null ? own.Failure : $"{own.Failure}; UPnP: {upnp.Failure}" };
    }

    /// <summary>True when PCP and NAT-PMP have both been tried and neither holds a mapping: the host may try UPnP.</summary>
    public bool Unavailable(TimeSpan now) => _client?.Status(now).State == "unavailable";

    /// <summary>`mesh-agent down`: the next poll deletes the mapping at the router, and UPnP's is forgotten (the host deletes it).</summary>
    public void Release()
    {
        _client?.Release();
        _upnp = null;
    }

    /// <summary>A direct path died: ask the router again now rather than at the next renewal.</summary>
    public void Refresh(TimeSpan now) => _client?.Refresh(now);

    /// <summary>Whether a datagram from <paramref name="from"/> is the router's answer to this mapping's requests.</summary>
    public bool IsRouter(NetEndpoint from) => _client is { } client && from == client.Server;

    /// <summary>Writes the next request due into <paramref name="output"/>; returns its length (0: none) and the router to send it to.</summary>
    public int Poll(TimeSpan now, Span<byte> output, out NetEndpoint router)
    {
        router = default;
        if (_client is not { } client) return 0;
        router = client.Server;
        return client.Poll(now, output);
    }

    /// <summary>The router's answer; false when it answered nothing this mapping asked, <paramref name="changed"/> when the mapped endpoint moved.</summary>
    public bool OnResponse(ReadOnlySpan<byte> datagram, TimeSpan now, out bool changed)
    {
        changed = false;
        if (_client is not { } client) return false;
        var before = client.External;
        if (!client.OnResponse(datagram, now)) return false;
        changed = client.External != before;
        return true;
    }

    /// <summary>The mapped endpoint PCP or NAT-PMP holds now (UPnP's is in <see cref="Status"/>).</summary>
    public NetEndpoint? OwnExternal => _client?.External;
}
