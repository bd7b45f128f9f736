using System.Buffers.Binary;
using System.Net;
using Mesh.Traversal.PortMapping;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;

namespace Mesh.Traversal.Tests;

public sealed class PortMapClientTests
{
    private static readonly IPAddress Gateway = IPAddress.Parse("192.168.1.1");
    private static readonly IPAddress Client = IPAddress.Parse("192.168.1.10");
    internal static readonly NetEndpoint External = NetEndpoint.Parse("198.51.100.7:41641");

    private static PortMapClient NewClient() => new(Gateway, Client, 41641, new SeededEntropy(3), TimeSpan.Zero);

    private static List<byte[]> Drain(PortMapClient client, TimeSpan now)
    {
        var sent = new List<byte[]>();
        var buffer = new byte[128];
        int length;
        while ((length = client.Poll(now, buffer)) > 0) sent.Add(buffer[..length]);
        return sent;
    }

    /// <summary>The router's answer to a PCP MAP request: <see cref="External"/> for the requested lifetime, or the given failure.</summary>
    internal static byte[] PcpAnswer(byte[] request, byte result = PcpMessage.Success, uint lifetime = 7200)
    {
        Assert.True(PcpMessage.TryReadMapRequest(request, out var map));
        var response = new byte[PcpMessage.MapLength];
        PcpMessage.WriteMapResponse(response, map, result, lifetime, 10, External);
        return response;
    }

    [Fact]
    public void PcpMapsTheSocketsPortRenewsAtHalfTheLifetimeAndDeletesOnRelease()
    {
        var client = NewClient();
        var request = Assert.Single(Drain(client, TimeSpan.Zero));
        Assert.True(PcpMessage.TryReadMapRequest(request, out var map));
        Assert.Equal(Client, map.Client);
        Assert.Equal(41641, map.InternalPort);
        Assert.Equal(PortMapClient.RequestedLifetime, map.Lifetime);
        Assert.Equal(PcpMessage.Port, client.Server.Port);

        Assert.True(client.OnResponse(PcpAnswer(request, lifetime: 600), TimeSpan.FromMilliseconds(5)));
        Assert.Equal(External, client.External);
        Assert.Equal(PortMapProtocol.Pcp, client.Status(TimeSpan.FromSeconds(1)).Protocol);
        Assert.Equal("mapped", client.Status(TimeSpan.FromSeconds(1)).State);
        Assert.Empty(Drain(client, TimeSpan.FromSeconds(299)));

        var renewal = Assert.Single(Drain(client, TimeSpan.FromSeconds(301)));
        Assert.Equal(request.AsSpan(24, PcpMessage.NonceLength).ToArray(), renewal.AsSpan(24, PcpMessage.NonceLength).ToArray());
        Assert.Equal(External.Port, BinaryPrimitives.ReadUInt16BigEndian(renewal.AsSpan(42)));
        Assert.Equal("renewing", client.Status(TimeSpan.FromSeconds(300)).State);
        Assert.True(client.OnResponse(PcpAnswer(renewal), TimeSpan.FromSeconds(300)));

        client.Release();
        var deletes = Drain(client, TimeSpan.FromSeconds(301));
        Assert.Equal(2, deletes.Count);
        Assert.True(PcpMessage.TryReadMapRequest(deletes[0], out var delete));
        Assert.Equal(0u, delete.Lifetime);
        Assert.Null(client.External);
        Assert.Empty(Drain(client, TimeSpan.FromHours(3)));
    }

    [Fact]
    public void ANatPmpGatewayAnswersPcpWithUnsupportedVersionAndGetsNatPmp()
    {
        var client = NewClient();
        Drain(client, TimeSpan.Zero);
        // RFC 6887 §9: a NAT-PMP-only server answers version 2 with its own version 0 "unsupported version".
        Assert.True(client.OnResponse([0, 0x81, 0, 1, 0, 0, 0, 9], TimeSpan.FromMilliseconds(3)));
        var sent = Drain(client, TimeSpan.FromMilliseconds(3));
        Assert.Equal(2, sent.Count);
        Assert.Equal(new byte[] { 0, 0 }, sent[0]);
        Assert.Equal(NatPmpMessage.MapRequestLength, sent[1].Length);
        Assert.Equal(41641, BinaryPrimitives.ReadUInt16BigEndian(sent[1].AsSpan(4)));

        var address = new byte[12];
        address[1] = 0x80;
        new byte[] { 198, 51, 100, 7 }.CopyTo(address, 8);
        var mapped = new byte[16];
        mapped[1] = 0x81;
        BinaryPrimitives.WriteUInt16BigEndian(mapped.AsSpan(8), 41641);
        BinaryPrimitives.WriteUInt16BigEndian(mapped.AsSpan(10), 40000);
        BinaryPrimitives.WriteUInt32BigEndian(mapped.AsSpan(12), 3600);
        Assert.True(client.OnResponse(mapped, TimeSpan.FromMilliseconds(6)));
        Assert.Null(client.External);
        Assert.True(client.OnResponse(address, TimeSpan.FromMilliseconds(6)));
        Assert.Equal(NetEndpoint.Parse("198.51.100.7:40000"), client.External);
        Assert.Equal(PortMapProtocol.NatPmp, client.Status(TimeSpan.Zero).Protocol);

        client.Release();
        var delete = Drain(client, TimeSpan.FromSeconds(1))[0];
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(delete.AsSpan(8)));
    }

    [Fact]
    public void SilenceTriesPcpThenNatPmpThenSaysSoAndRetriesLater()
    {
        var client = NewClient();
        var sent = new List<byte[]>();
        TimeSpan? failedAt = null;
        for (var now = TimeSpan.Zero; now < TimeSpan.FromSeconds(20); now += TimeSpan.FromMilliseconds(50))
        {
            sent.AddRange(Drain(client, now));
            if (client.Status(now).State == "unavailable") failedAt ??= now;
        }
        Assert.NotNull(failedAt);
        Assert.Equal(PortMapClient.Attempts, sent.Count(d => d[0] == PcpMessage.Version));
        Assert.Equal(PortMapClient.Attempts * 2, sent.Count(d => d[0] == NatPmpMessage.Version));
        var status = client.Status(TimeSpan.FromSeconds(20));
        Assert.Equal("unavailable", status.State);
        Assert.Contains("no PCP or NAT-PMP answer from the gateway 192.168.1.1", status.Failure);
        Assert.Empty(Drain(client, failedAt.Value + PortMapClient.RetryInterval - TimeSpan.FromSeconds(1)));
        Assert.Single(Drain(client, failedAt.Value + PortMapClient.RetryInterval));
    }

    [Fact]
    public void ARefusalIsReportedAndForgedOrCutAnswersChangeNothing()
    {
        var client = NewClient();
        var request = Drain(client, TimeSpan.Zero)[0];
        var forged = PcpAnswer(request);
        forged[24] ^= 0xFF;
        Assert.False(client.OnResponse(forged, TimeSpan.Zero));
        Assert.False(client.OnResponse(PcpAnswer(request).AsSpan(0, 30), TimeSpan.Zero));
        Assert.False(client.OnResponse([], TimeSpan.Zero));
        Assert.False(client.OnResponse(new byte[200], TimeSpan.Zero));
        Assert.Null(client.External);
        Assert.Equal("asking", client.Status(TimeSpan.Zero).State);

        Assert.True(client.OnResponse(PcpAnswer(request, result: 2), TimeSpan.Zero));
        var status = client.Status(TimeSpan.Zero);
        Assert.Equal("unavailable", status.State);
        Assert.Equal("PCP: the gateway refused: not authorized", status.Failure);
    }

    [Fact]
    public void AMappingWhoseRenewalsGoUnansweredIsGivenUp()
    {
        var client = NewClient();
        var request = Drain(client, TimeSpan.Zero)[0];
        client.OnResponse(PcpAnswer(request, lifetime: 120), TimeSpan.Zero);
        client.Refresh(TimeSpan.FromSeconds(10));
        for (var now = TimeSpan.FromSeconds(10); now < TimeSpan.FromSeconds(20); now += TimeSpan.FromMilliseconds(50)) Drain(client, now);
        Assert.Null(client.External);
        Assert.Contains("stopped answering renewals", client.Status(TimeSpan.FromSeconds(20)).Failure);
    }
}
