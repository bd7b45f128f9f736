using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Mesh.WireGuard.Tun;

/// <summary>The ones' complement sum of RFC 1071, for the IP, TCP and UDP headers the offloads rewrite.</summary>
internal static class InternetChecksum
{
    /// <summary>Adds the bytes (as big-endian 16-bit words, an odd last byte padded) to a running sum.</summary>
    public static ulong Add(ulong sum, ReadOnlySpan<byte> data)
    {
        // Four bytes at a time in native order: a ones' complement sum of byte-swapped words is the byte-swapped sum
        // (RFC 1071, 2.B), so the words are summed as they lie in memory and the folded result is swapped once.
        ulong native = 0;
        var words = MemoryMarshal.Cast<byte, uint>(data);
        foreach (var word in words) native += word;
        var rest = data[(words.Length * 4)..];
        if (rest.Length >= 2)
        {
            native += MemoryMarshal.Read<ushort>(rest);
            rest = rest[2..];
        }
        if (rest.Length == 1) native += BitConverter.IsLittleEndian ? rest[0] : (uint)rest[0] << 8;
        var folded = Fold(native);
        return sum + (BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(folded) : folded);
    }

    /// <summary>The pseudo-header of TCP and UDP: both addresses, the protocol and the transport length.</summary>
    public static ulong PseudoHeader(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol, int length)
    {
        var sum = Add(0, source);
        sum = Add(sum, destination);
        return sum + protocol + (uint)length;
    }

    /// <summary>The pseudo-header of the TCP or UDP segment after an IPv4 or IPv6 header, for this transport length.</summary>
    public static ulong PseudoHeaderOf(ReadOnlySpan<byte> packet, bool ipv4, byte protocol, int transportLength) => ipv4
        ? PseudoHeader(packet.Slice(12, 4), packet.Slice(16, 4), protocol, transportLength)
        : PseudoHeader(packet.Slice(8, 16), packet.Slice(24, 16), protocol, transportLength);

    /// <summary>Folds a sum to 16 bits (not complemented).</summary>
    public static ushort Fold(ulong sum)
    {
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)sum;
    }

    /// <summary>The checksum to store: the complement of the folded sum.</summary>
    public static ushort Complete(ulong sum) => (ushort)~Fold(sum);
}
