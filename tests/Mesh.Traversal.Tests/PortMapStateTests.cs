using System.Net;
using Mesh.Traversal.PortMapping;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;

namespace Mesh.Traversal.Tests;

/// <summary>The node's port mapping as the path engine holds it: which router is asked, which answer counts, and which mapping is published.</summary>
public sealed class PortMapStateTests
{
    private static readonly IPAddress Gateway = IPAddress.Parse("192.168.1.1");
    private static readonly IPAddress Source = IPAddress.Parse("192.168.1.10");
    private static readonly NetEndpoint External = PortMapClientTests.External;
    private static readonly NetEndpoint ByUpnp = NetEndpoint.Parse("198.51.100.7:50000");
    private static readonly DateTime Utc = new(2026, 12, 4, 0, 0, 0, DateTimeKind.Utc);

    private static List<(byte[] Bytes, NetEndpoint To)> Drain(PortMapState state, TimeSpan now)
    {
        var sent = new List<(byte[], NetEndpoint)>();
        var buffer = new byte[128];
        int length;
        while ((length = state.Poll(now, buffer, out var router)) > 0) sent.Add((buffer[..length], router));
        return sent;
    }

    private static PortMapState Mapped()
    {
        var state = new PortMapState(enabled: true, new SeededEntropy(1));
        state.Restart(41641, TimeSpan.Zero);
        Assert.True(state.SetGateway(Gateway, Source, TimeSpan.Zero));
        var (request, _) = Assert.Single(Drain(state, TimeSpan.Zero));
        Assert.True(state.OnResponse(PortMapClientTests.PcpAnswer(request), TimeSpan.FromMilliseconds(5), out var changed));
        Assert.True(changed);
        return state;
    }

    [Fact]
    public void NothingIsAskedWithoutAGatewayOrWhenMappingIsOff()
    {
        var state = new PortMapState(enabled: true, new SeededEntropy(1));
        state.Restart(41641, TimeSpan.Zero);
        Assert.Empty(Drain(state, TimeSpan.Zero));
        Assert.Null(state.Status(TimeSpan.Zero, Utc));

        var off = new PortMapState(enabled: false, new SeededEntropy(1));
        off.Restart(41641, TimeSpan.Zero);
        off.SetGateway(Gateway, Source, TimeSpan.Zero);
        Assert.Empty(Drain(off, TimeSpan.Zero));
        Assert.Null(off.Status(TimeSpan.Zero, Utc));
    }

    [Fact]
    public void OnlyTheGatewaysAnswerToThisMappingCounts()
    {
        var state = new PortMapState(enabled: true, new SeededEntropy(1));
        state.Restart(41641, TimeSpan.Zero);
        Assert.True(state.SetGateway(Gateway, Source, TimeSpan.Zero));
        Assert.False(state.SetGateway(Gateway, Source, TimeSpan.Zero));
        var (request, router) = Assert.Single(Drain(state, TimeSpan.Zero));
        Assert.Equal(new NetEndpoint(Gateway, PcpMessage.Port), router);
        Assert.True(state.IsRouter(router));
        Assert.False(state.IsRouter(NetEndpoint.Parse("192.168.1.2:5351")));
        Assert.False(state.OnResponse(new byte[24], TimeSpan.FromMilliseconds(5), out _));
        Assert.Null(state.OwnExternal);

        Assert.True(state.OnResponse(PortMapClientTests.PcpAnswer(request), TimeSpan.FromMilliseconds(5), out var changed));
        Assert.True(changed);
        Assert.Equal(External, state.OwnExternal);
        var status = state.Status(TimeSpan.FromSeconds(1), Utc)!;
        Assert.Equal((PortMapProtocol.Pcp, External, "mapped"), (status.Protocol, status.External, status.State));
    }

    [Fact]
    public void UpnpStandsInOnlyWhilePcpHoldsNoMapping()
    {
        var state = new PortMapState(enabled: true, new SeededEntropy(1));
        state.Restart(41641, TimeSpan.Zero);
        state.SetGateway(Gateway, Source, TimeSpan.Zero);
        var (request, _) = Assert.Single(Drain(state, TimeSpan.Zero));
        state.SetUpnp(ByUpnp, Utc.AddHours(1), null);
        var upnp = state.Status(TimeSpan.Zero, Utc)!;
        Assert.Equal((PortMapProtocol.Upnp, ByUpnp, TimeSpan.FromHours(1)), (upnp.Protocol, upnp.External, upnp.ExpiresIn));

        state.OnResponse(PortMapClientTests.PcpAnswer(request), TimeSpan.FromMilliseconds(5), out _);
        Assert.Equal(External, state.Status(TimeSpan.FromSeconds(1), Utc)!.External);

        // `down` releases both: the router's PCP mapping is deleted, and the host's UPnP one is no longer published.
        state.Release();
        Assert.NotEqual(ByUpnp, state.Status(TimeSpan.FromSeconds(1), Utc)?.External);
    }

    /// <summary>A new network is a new router, even at the old gateway's address: the mapping starts over there.</summary>
    [Fact]
    public void ANewGatewayOrPortStartsTheMappingOver()
    {
        var state = Mapped();
        var other = IPAddress.Parse("10.0.0.1");
        Assert.True(state.SetGateway(other, IPAddress.Parse("10.0.0.5"), TimeSpan.FromSeconds(1)));
        Assert.Null(state.OwnExternal);
        var (_, router) = Assert.Single(Drain(state, TimeSpan.FromSeconds(1)));
        Assert.Equal(new NetEndpoint(other, PcpMessage.Port), router);

        state = Mapped();
        state.Restart(41642, TimeSpan.FromSeconds(1));
        Assert.Null(state.OwnExternal);
        var (request, _) = Assert.Single(Drain(state, TimeSpan.FromSeconds(1)));
        Assert.True(PcpMessage.TryReadMapRequest(request, out var map));
        Assert.Equal(41642, map.InternalPort);
    }
}
