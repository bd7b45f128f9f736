using System.Net;
using Mesh.WireGuard.Routing;

namespace Mesh.WireGuard.Tests;

public sealed class AllowedIpsTests
{
    private sealed record P(string Name);

    private static readonly P A = new("a"), B = new("b"), C = new("c");

    [Fact]
    public void LongestPrefixWinsForIPv4AndIPv6()
    {
        var table = new AllowedIps<P>();
        table.Insert(IpPrefix.Parse("0.0.0.0/0"), A);
        table.Insert(IpPrefix.Parse("10.0.0.0/8"), B);
        table.Insert(IpPrefix.Parse("10.1.2.3/32"), C);
        table.Insert(IpPrefix.Parse("fd00::/8"), A);
        table.Insert(IpPrefix.Parse("fd7a:115c::/32"), B);
        Assert.Same(A, table.Lookup(IPAddress.Parse("8.8.8.8")));
        Assert.Same(B, table.Lookup(IPAddress.Parse("10.1.2.4")));
        Assert.Same(C, table.Lookup(IPAddress.Parse("10.1.2.3")));
        Assert.Same(B, table.Lookup(IPAddress.Parse("fd7a:115c::1")));
        Assert.Same(A, table.Lookup(IPAddress.Parse("fdff::1")));
        Assert.Null(table.Lookup(IPAddress.Parse("2001:db8::1")));
    }

    [Fact]
    public void HostBitsAreMaskedAndBareAddressesAreHosts()
    {
        Assert.Equal("10.1.2.0/24", IpPrefix.Parse("10.1.2.99/24").ToString());
        Assert.Equal("10.1.2.99/32", IpPrefix.Parse("10.1.2.99").ToString());
        Assert.Equal("fd00::/64", IpPrefix.Parse("fd00::1234/64").ToString());
        Assert.False(IpPrefix.TryParse("10.0.0.0/33", out _, out var error));
        Assert.Contains("0-32", error);
        Assert.False(IpPrefix.TryParse("ten.0.0.0/8", out _, out _));
    }

    [Fact]
    public void APrefixMovesToTheLastPeerGivenIt()
    {
        var table = new AllowedIps<P>();
        table.Insert(IpPrefix.Parse("10.0.0.0/24"), A);
        table.Insert(IpPrefix.Parse("10.0.0.0/24"), B);
        Assert.Same(B, table.Lookup(IPAddress.Parse("10.0.0.5")));
        Assert.Empty(table.PrefixesOf(A));
    }

    [Fact]
    public void RemoveAndRemovePeer()
    {
        var table = new AllowedIps<P>();
        table.Insert(IpPrefix.Parse("10.0.0.0/24"), A);
        table.Insert(IpPrefix.Parse("10.0.1.0/24"), A);
        table.Insert(IpPrefix.Parse("fd00::/64"), A);
        table.Insert(IpPrefix.Parse("10.0.0.128/25"), B);
        Assert.Equal(["10.0.0.0/24", "10.0.1.0/24", "fd00::/64"], table.PrefixesOf(A).Select(p => p.ToString()));
        Assert.True(table.Remove(IpPrefix.Parse("10.0.1.0/24")));
        Assert.False(table.Remove(IpPrefix.Parse("10.0.1.0/24")));
        Assert.Null(table.Lookup(IPAddress.Parse("10.0.1.1")));
        table.RemovePeer(A);
        Assert.Null(table.Lookup(IPAddress.Parse("10.0.0.1")));
        Assert.Same(B, table.Lookup(IPAddress.Parse("10.0.0.200")));
        Assert.Null(table.Lookup(IPAddress.Parse("fd00::1")));
    }

    [Fact]
    public void LookupFromRawHeaderBytes()
    {
        var table = new AllowedIps<P>();
        table.Insert(IpPrefix.Parse("192.168.0.0/16"), A);
        Assert.Same(A, table.Lookup(new byte[] { 192, 168, 4, 4 }));
        Assert.Null(table.Lookup(new byte[] { 192, 169, 4, 4 }));
        Assert.Null(table.Lookup(new byte[] { 1, 2, 3 }));
    }

    [Fact]
    public void SwappingAPeersSetKeepsWhatStaysAndDropsOnlyWhatGoes()
    {
        var table = new AllowedIps<P>();
        table.Insert(IpPrefix.Parse("10.0.0.0/24"), A);
        table.Insert(IpPrefix.Parse("10.0.1.0/24"), A);
        table.Insert(IpPrefix.Parse("10.9.0.0/16"), B);
        table.SetPeerPrefixes(A, [IpPrefix.Parse("10.0.1.0/24"), IpPrefix.Parse("fd00::/64"), IpPrefix.Parse("10.9.0.0/16")]);
        Assert.Null(table.Lookup(IPAddress.Parse("10.0.0.1")));
        Assert.Same(A, table.Lookup(IPAddress.Parse("10.0.1.1")));
        Assert.Same(A, table.Lookup(IPAddress.Parse("fd00::1")));
        // A prefix another peer had moves, and leaves that peer's list.
        Assert.Same(A, table.Lookup(IPAddress.Parse("10.9.1.1")));
        Assert.Empty(table.PrefixesOf(B));
        Assert.Equal(["10.0.1.0/24", "10.9.0.0/16", "fd00::/64"], table.PrefixesOf(A).Select(p => p.ToString()));

        table.SetPeerPrefixes(A, []);
        Assert.Empty(table.PrefixesOf(A));
        Assert.Null(table.Lookup(IPAddress.Parse("10.0.1.1")));
    }

    [Fact]
    public void RemovingAPeerTakesOnlyItsOwnPrefixes()
    {
        var table = new AllowedIps<P>();
        table.Insert(IpPrefix.Parse("10.0.0.0/8"), A);
        table.Insert(IpPrefix.Parse("10.1.0.0/16"), B);
        table.Insert(IpPrefix.Parse("10.1.0.0/16"), A);
        table.RemovePeer(B);
        Assert.Same(A, table.Lookup(IPAddress.Parse("10.1.2.3")));
        table.RemovePeer(A);
        Assert.Null(table.Lookup(IPAddress.Parse("10.1.2.3")));
        Assert.Null(table.Lookup(IPAddress.Parse("10.2.0.1")));
    }

    [Fact]
    public async Task ALookupDuringASwapAlwaysFindsTheAddressThatStays()
    {
        var table = new AllowedIps<P>();
        var stays = IpPrefix.Parse("100.64.0.7/32");
        table.SetPeerPrefixes(A, [stays]);
        var misses = 0;
        using var stop = new CancellationTokenSource();
        var swapper = Task.Run(() =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                table.SetPeerPrefixes(A, [stays, IpPrefix.Parse($"10.{i % 200}.0.0/16")]);
            }
        });
        var address = IPAddress.Parse("100.64.0.7");
        for (var i = 0; i < 200_000; i++)
        {
            if (!ReferenceEquals(table.Lookup(address), A)) misses++;
        }
        stop.Cancel();
        await swapper;
        Assert.Equal(0, misses);
    }

    /// <summary>
    /// Random inserts, moves and removals against a plain list searched for the longest match: the compressed
    /// trie answers every lookup the same, and once every prefix is gone no node is left.
    /// </summary>
    [Theory]
    [InlineData(4)]
    [InlineData(16)]
    public void TheCompressedTrieAgreesWithAPlainLongestMatchUnderChurn(int addressBytes)
    {
        var random = new Random(addressBytes);
        var peers = Enumerable.Range(0, 5).Select(i => new P($"p{i}")).ToArray();
        var table = new AllowedIps<P>();
        var reference = new Dictionary<IPNetwork, P>();
        // Addresses from a small pool so that prefixes nest, share forks and collide.
        byte[] RandomAddress()
        {
            var bytes = new byte[addressBytes];
            bytes[0] = (byte)(random.Next(2) * 0x80 | random.Next(4));
            for (var i = 1; i < bytes.Length; i++) bytes[i] = (byte)random.Next(3);
            return bytes;
        }
        var largest = 0;
        for (var step = 0; step < 4000; step++)
        {
            largest = Math.Max(largest, table.NodeCount);
            var prefix = new IPAddress(RandomAddress());
            var network = IpPrefix.Parse($"{prefix}/{random.Next(addressBytes * 8 + 1)}");
            if (random.Next(3) == 0)
            {
                Assert.Equal(reference.Remove(network), table.Remove(network));
            }
            else if (random.Next(10) == 0)
            {
                var gone = peers[random.Next(peers.Length)];
                table.RemovePeer(gone);
                foreach (var key in reference.Where(e => e.Value == gone).Select(e => e.Key).ToList()) reference.Remove(key);
            }
            else
            {
                var peer = peers[random.Next(peers.Length)];
                table.Insert(network, peer);
                reference[network] = peer;
            }
            for (var probe = 0; probe < 8; probe++)
            {
                var address = new IPAddress(RandomAddress());
                var expected = reference.Where(e => e.Key.Contains(address)).OrderByDescending(e => e.Key.PrefixLength).Select(e => e.Value).FirstOrDefault();
                Assert.Same(expected, table.Lookup(address));
            }
        }
        Assert.True(largest > 50, $"the table grew to {largest} nodes");
        foreach (var peer in peers)
        {
            Assert.Equal(reference.Where(e => e.Value == peer).Select(e => e.Key).OrderBy(k => k.ToString()), table.PrefixesOf(peer).OrderBy(k => k.ToString()));
            table.RemovePeer(peer);
        }
        Assert.Equal(0, table.NodeCount);
    }
}
