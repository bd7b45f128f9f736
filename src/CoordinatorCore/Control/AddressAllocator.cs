using System.Buffers.Binary;
using System.Net;
using System.Numerics;
using System.Security.Cryptography;

namespace Mesh.Coordinator.Control;

/// <summary>
/// Mesh addresses: the n-th node ever registered gets the n-th host address of the IPv4 prefix and the
/// n-th interface identifier of the IPv6 ULA prefix. The counter only grows, so no address is ever shared or reused.
/// </summary>
public sealed class AddressAllocator
{
    private readonly IPNetwork _ipv4;
    private readonly IPNetwork _ipv6;
    private long _next;

    public AddressAllocator(IPNetwork ipv4, IPNetwork ipv6, long next)
    {
        if (ipv4.BaseAddress.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork || ipv4.PrefixLength > 30)
        {
            throw new ArgumentException($"The IPv4 prefix {ipv4} must be IPv4 and /30 or larger.", nameof(ipv4));
        }
        if (ipv6.BaseAddress.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6 || ipv6.PrefixLength > 112)
        {
            throw new ArgumentException($"The IPv6 prefix {ipv6} must be IPv6 and /112 or larger.", nameof(ipv6));
        }
        _ipv4 = ipv4;
        _ipv6 = ipv6;
        _next = Math.Max(next, 1);
    }

    public IPNetwork Ipv4Prefix => _ipv4;
    public IPNetwork Ipv6Prefix => _ipv6;
    public long Next => _next;

    /// <summary>Takes back an allocation whose node was never stored.</summary>
    public void Reset(long next) => _next = next;

    /// <summary>The next pair of addresses, false when the IPv4 prefix is used up; the caller persists <see cref="Next"/> with the node.</summary>
    public bool TryAllocate(out IPAddress ipv4, out IPAddress ipv6)
    {
        var hosts = (1L << (32 - _ipv4.PrefixLength)) - 2;
        if (_next > hosts)
        {
            ipv4 = ipv6 = IPAddress.None;
            return false;
        }
        var index = _next++;
        var v4 = BinaryPrimitives.ReadUInt32BigEndian(_ipv4.BaseAddress.GetAddressBytes()) + (uint)index;
        var v4Bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(v4Bytes, v4);
        var v6 = new BigInteger(_ipv6.BaseAddress.GetAddressBytes(), isUnsigned: true, isBigEndian: true) + index;
        var v6Bytes = new byte[16];
        v6.TryWriteBytes(v6Bytes, out _, isUnsigned: true, isBigEndian: true);
        var padded = new byte[16];
        var length = v6.GetByteCount(isUnsigned: true);
        v6Bytes.AsSpan(0, length).CopyTo(padded.AsSpan(16 - length));
        ipv4 = new IPAddress(v4Bytes);
        ipv6 = new IPAddress(padded);
        return true;
    }

    /// <summary>A random ULA /48 (RFC 4193: fd00::/8 with a 40-bit random global ID).</summary>
    public static IPNetwork RandomUlaPrefix()
    {
        var bytes = new byte[16];
        bytes[0] = 0xfd;
        RandomNumberGenerator.Fill(bytes.AsSpan(1, 5));
        return new IPNetwork(new IPAddress(bytes), 48);
    }
}
