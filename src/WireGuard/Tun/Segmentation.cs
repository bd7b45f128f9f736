using System.Buffers.Binary;

namespace Mesh.WireGuard.Tun;

/// <summary>
/// Turns what a TUN device with offloads hands over into ordinary packets (the shape of wireguard-go's
/// gsoSplit): a TSO or USO super-packet becomes one packet per segment, each with its own IP length, IPv4 id,
/// TCP sequence number and checksums; a packet whose checksum the kernel left to finish gets it finished.
/// </summary>
internal static class Segmentation
{
    private const byte Tcp = 6;
    private const byte Udp = 17;
    private const byte TcpFin = 0x01;
    private const byte TcpPsh = 0x08;
    private const byte TcpCwr = 0x80;

    /// <summary>Splits <paramref name="packet"/> into <paramref name="output"/>; false (and nothing added) when the header does not fit the packet.</summary>
    public static bool Split(VirtioNetHeader header, Span<byte> packet, PacketBatch output)
    {
        var gsoType = (byte)(header.GsoType & ~VirtioNetHeader.GsoEcn);
        if (gsoType == VirtioNetHeader.GsoNone)
        {
            if ((header.Flags & VirtioNetHeader.NeedsChecksum) != 0 && !FinishChecksum(header, packet)) return false;
            return output.Add(packet);
        }
        if (packet.Length < 20 || header.GsoSize == 0) return false;
        var version = packet[0] >> 4;
        var ipv4 = version == 4;
        var fits = gsoType switch
        {
            VirtioNetHeader.GsoTcpV4 => ipv4,
            VirtioNetHeader.GsoTcpV6 => version == 6,
            VirtioNetHeader.GsoUdpL4 => ipv4 || version == 6,
            _ => false,
        };
        if (!fits) return false;
        int ipHeaderLength = header.ChecksumStart;
        if (ipHeaderLength < (ipv4 ? 20 : 40) || ipHeaderLength + 8 > packet.Length) return false;
        var tcp = gsoType != VirtioNetHeader.GsoUdpL4;
        var transportHeaderLength = tcp ? (packet[ipHeaderLength + 12] >> 4) * 4 : 8;
        if (transportHeaderLength < 8 || (tcp && transportHeaderLength < 20)) return false;
        var headerLength = ipHeaderLength + transportHeaderLength;
        if (headerLength > packet.Length) return false;

        var headers = packet[..headerLength];
        var payload = packet[headerLength..];
        var firstId = ipv4 ? BinaryPrimitives.ReadUInt16BigEndian(headers[4..]) : 0;
        var firstSequence = tcp ? BinaryPrimitives.ReadUInt32BigEndian(headers[(ipHeaderLength + 4)..]) : 0;
        var start = output.Count;
        for (int offset = 0, index = 0; offset < payload.Length; offset += header.GsoSize, index++)
        {
            var chunk = payload.Slice(offset, Math.Min(header.GsoSize, payload.Length - offset));
            var segment = output.Reserve(headerLength + chunk.Length);
            if (segment.IsEmpty) return Undo(output, start);
            headers.CopyTo(segment);
            chunk.CopyTo(segment[headerLength..]);
            var last = offset + chunk.Length == payload.Length;
            if (ipv4)
            {
                BinaryPrimitives.WriteUInt16BigEndian(segment[2..], (ushort)segment.Length);
                BinaryPrimitives.WriteUInt16BigEndian(segment[4..], (ushort)(firstId + index));
                segment.Slice(10, 2).Clear();
                BinaryPrimitives.WriteUInt16BigEndian(segment[10..], InternetChecksum.Complete(InternetChecksum.Add(0, segment[..ipHeaderLength])));
            }
            else
            {
                BinaryPrimitives.WriteUInt16BigEndian(segment[4..], (ushort)(segment.Length - 40));
            }
            var transport = segment[ipHeaderLength..];
            int checksumAt;
            if (tcp)
            {
                BinaryPrimitives.WriteUInt32BigEndian(transport[4..], firstSequence + (uint)offset);
                if (!last) transport[13] &= unchecked((byte)~(TcpFin | TcpPsh));
                if (index > 0) transport[13] &= unchecked((byte)~TcpCwr);
                checksumAt = 16;
            }
            else
            {
                BinaryPrimitives.WriteUInt16BigEndian(transport[4..], (ushort)transport.Length);
                checksumAt = 6;
            }
            transport.Slice(checksumAt, 2).Clear();
            var checksum = TransportChecksum(segment, ipv4, ipHeaderLength, tcp ? Tcp : Udp);
            if (!tcp && checksum == 0) checksum = 0xffff;
            BinaryPrimitives.WriteUInt16BigEndian(transport[checksumAt..], checksum);
            output.Commit(segment.Length);
        }
        return true;
    }

    /// <summary>The TCP or UDP checksum over the packet as it is: the value to store when the field is zero, 0 when the stored one is right.</summary>
    internal static ushort TransportChecksum(ReadOnlySpan<byte> packet, bool ipv4, int ipHeaderLength, byte protocol)
    {
        var transport = packet[ipHeaderLength..];
        return InternetChecksum.Complete(InternetChecksum.Add(InternetChecksum.PseudoHeaderOf(packet, ipv4, protocol, transport.Length), transport));
    }

    /// <summary>CHECKSUM_PARTIAL: the field holds the pseudo-header's sum; the sum from csum_start to the end completes it.</summary>
    private static bool FinishChecksum(VirtioNetHeader header, Span<byte> packet)
    {
        var at = header.ChecksumStart + header.ChecksumOffset;
        if (header.ChecksumStart >= packet.Length || at + 2 > packet.Length) return false;
        var checksum = InternetChecksum.Complete(InternetChecksum.Add(0, packet[header.ChecksumStart..]));
        BinaryPrimitives.WriteUInt16BigEndian(packet[at..], checksum);
        return true;
    }

    private static bool Undo(PacketBatch output, int count)
    {
        output.Truncate(count);
        return false;
    }
}
