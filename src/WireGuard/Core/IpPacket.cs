using System.Buffers.Binary;

namespace Mesh.WireGuard.Core;

/// <summary>Just enough of IPv4 and IPv6 headers for cryptokey routing.</summary>
public static class IpPacket
{
    /// <summary>The packet's own length from its header (padding after it is not part of it), or -1 when it is not a valid IP packet.</summary>
    public static int Length(ReadOnlySpan<byte> packet)
    {
        if (packet.IsEmpty) return -1;
        switch (packet[0] >> 4)
        {
            case 4:
            {
                if (packet.Length < 20) return -1;
                int total = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
                return total >= 20 && total <= packet.Length ? total : -1;
            }
            case 6:
            {
                if (packet.Length < 40) return -1;
                var total = 40 + BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
                return total <= packet.Length ? total : -1;
            }
            default:
                return -1;
        }
    }

    /// <summary>Source address bytes (4 or 16); the packet must have passed <see cref="Length"/>.</summary>
    public static ReadOnlySpan<byte> Source(ReadOnlySpan<byte> packet) => packet[0] >> 4 == 4 ? packet.Slice(12, 4) : packet.Slice(8, 16);

    /// <summary>Destination address bytes (4 or 16), or empty when the header is too short.</summary>
    public static ReadOnlySpan<byte> Destination(ReadOnlySpan<byte> packet)
    {
        if (packet.IsEmpty) return default;
        return (packet[0] >> 4) switch
        {
            4 when packet.Length >= 20 => packet.Slice(16, 4),
            6 when packet.Length >= 40 => packet.Slice(24, 16),
            _ => default,
        };
    }
}
