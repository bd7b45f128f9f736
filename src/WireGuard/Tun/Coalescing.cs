using System.Buffers.Binary;

namespace Mesh.WireGuard.Tun;

/// <summary>
/// The packets one batch of datagrams decrypted to, on their way to a TUN device with offloads: consecutive
/// TCP segments of one flow become one super-packet the kernel takes in a single write (GRO, the shape of
/// wireguard-go's tcpGRO). Segments merge only when nothing but their payload and sequence number differs;
/// anything else is written as it came, in its flow's order. A segment whose checksum does not verify is never
/// merged (the merged packet's checksum is left to the kernel, which then trusts it).
/// </summary>
public sealed class Coalescing
{
    private const int MaxItems = 16;
    private const int MaxPacket = 65535;
    private const byte Tcp = 6;
    private const byte TcpAck = 0x10;
    private const byte TcpPsh = 0x08;

    private readonly byte[]?[] _buffers = new byte[MaxItems][];
    private readonly Item[] _items = new Item[MaxItems];
    private int _count;

    private struct Item
    {
        public int Length;
        public bool Open;
        public bool IPv4;
        public int IpHeaderLength;
        public int TcpHeaderLength;
        public int SegmentSize;
        public int Segments;
        public uint NextSequence;
    }

    public int Count => _count;

    /// <summary>Takes a copy of the packet; false when the batch is full (flush, then add again).</summary>
    public bool Add(ReadOnlySpan<byte> packet)
    {
        if (packet.Length > MaxPacket) return false;
        var coalescable = TryReadSegment(packet, out var segment);
        if (coalescable)
        {
            for (var i = _count - 1; i >= 0; i--)
            {
                ref var item = ref _items[i];
                if (!item.Open || !SameFlow(Packet(i), packet, segment)) continue;
                if (TryAppend(ref item, i, packet, segment)) return true;
                item.Open = false;
                break;
            }
        }
        if (_count == MaxItems) return false;
        var buffer = _buffers[_count] ??= new byte[VirtioNetHeader.Size + MaxPacket];
        packet.CopyTo(buffer.AsSpan(VirtioNetHeader.Size));
        _items[_count] = new Item
        {
            Length = packet.Length,
            Open = coalescable && segment.Flags == TcpAck,
            IPv4 = segment.IPv4,
            IpHeaderLength = segment.IpHeaderLength,
            TcpHeaderLength = segment.TcpHeaderLength,
            SegmentSize = segment.PayloadLength,
            Segments = 1,
            NextSequence = segment.Sequence + (uint)segment.PayloadLength,
        };
        _count++;
        return true;
    }

    /// <summary>Hands each packet, merged or not, to <paramref name="write"/> as a frame: virtio_net_hdr, then the packet.</summary>
    public void Flush(IFrameWriter writer)
    {
        try
        {
            WriteAll(writer);
        }
        finally
        {
            // A failed write loses this batch, never writes it twice.
            _count = 0;
        }
    }

    private void WriteAll(IFrameWriter writer)
    {
        for (var i = 0; i < _count; i++)
        {
            ref var item = ref _items[i];
            var frame = _buffers[i].AsSpan(0, VirtioNetHeader.Size + item.Length);
            var packet = frame[VirtioNetHeader.Size..];
            if (item.Segments == 1)
            {
                default(VirtioNetHeader).Write(frame);
            }
            else
            {
                FixLengths(packet, item);
                var headerLength = item.IpHeaderLength + item.TcpHeaderLength;
                new VirtioNetHeader(VirtioNetHeader.NeedsChecksum, item.IPv4 ? VirtioNetHeader.GsoTcpV4 : VirtioNetHeader.GsoTcpV6,
                    (ushort)headerLength, (ushort)item.SegmentSize, (ushort)item.IpHeaderLength, 16).Write(frame);
            }
            writer.Write(frame);
        }
    }

    private Span<byte> Packet(int index) => _buffers[index].AsSpan(VirtioNetHeader.Size, _items[index].Length);

    private bool TryAppend(ref Item item, int index, ReadOnlySpan<byte> packet, in Segment segment)
    {
        var merged = Packet(index);
        if (segment.IPv4 != item.IPv4 || segment.IpHeaderLength != item.IpHeaderLength || segment.TcpHeaderLength != item.TcpHeaderLength
            || segment.Sequence != item.NextSequence || segment.PayloadLength > item.SegmentSize
            || item.Length + segment.PayloadLength > MaxPacket || (segment.Flags & ~TcpPsh) != TcpAck) return false;
        var tcp = item.IpHeaderLength;
        // The acknowledgment and the options must match; the IP header may differ only in length, id and checksum.
        if (!packet.Slice(tcp + 8, 4).SequenceEqual(merged.Slice(tcp + 8, 4))
            || !packet.Slice(tcp + 20, segment.TcpHeaderLength - 20).SequenceEqual(merged.Slice(tcp + 20, segment.TcpHeaderLength - 20))) return false;
        if (item.IPv4)
        {
            if (packet[1] != merged[1] || packet[6] != merged[6] || packet[8] != merged[8]) return false;
        }
        else if (!packet[..4].SequenceEqual(merged[..4]) || packet[7] != merged[7])
        {
            return false;
        }
        packet[(tcp + segment.TcpHeaderLength)..].CopyTo(_buffers[index].AsSpan(VirtioNetHeader.Size + item.Length));
        item.Length += segment.PayloadLength;
        item.NextSequence += (uint)segment.PayloadLength;
        item.Segments++;
        if (segment.PayloadLength < item.SegmentSize || (segment.Flags & TcpPsh) != 0)
        {
            merged[tcp + 13] |= (byte)(segment.Flags & TcpPsh);
            item.Open = false;
        }
        return true;
    }

    private static bool SameFlow(ReadOnlySpan<byte> merged, ReadOnlySpan<byte> packet, in Segment segment)
    {
        if (merged[0] >> 4 != packet[0] >> 4) return false;
        var addresses = segment.IPv4 ? packet.Slice(12, 8) : packet.Slice(8, 32);
        var mergedAddresses = segment.IPv4 ? merged.Slice(12, 8) : merged.Slice(8, 32);
        var ports = packet.Slice(segment.IpHeaderLength, 4);
        return addresses.SequenceEqual(mergedAddresses) && ports.SequenceEqual(merged.Slice(segment.IpHeaderLength, 4));
    }

    private static void FixLengths(Span<byte> packet, in Item item)
    {
        var transportLength = packet.Length - item.IpHeaderLength;
        if (item.IPv4)
        {
            BinaryPrimitives.WriteUInt16BigEndian(packet[2..], (ushort)packet.Length);
            packet.Slice(10, 2).Clear();
            BinaryPrimitives.WriteUInt16BigEndian(packet[10..], InternetChecksum.Complete(InternetChecksum.Add(0, packet[..item.IpHeaderLength])));
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(packet[4..], (ushort)transportLength);
        }
        // CHECKSUM_PARTIAL: the pseudo-header's sum, not complemented; the kernel adds the rest.
        BinaryPrimitives.WriteUInt16BigEndian(packet[(item.IpHeaderLength + 16)..], InternetChecksum.Fold(InternetChecksum.PseudoHeaderOf(packet, item.IPv4, Tcp, transportLength)));
    }

    private readonly record struct Segment(bool IPv4, int IpHeaderLength, int TcpHeaderLength, int PayloadLength, uint Sequence, byte Flags);

    /// <summary>A TCP segment with payload, an option-free IP header, no fragmentation and a checksum that verifies.</summary>
    private static bool TryReadSegment(ReadOnlySpan<byte> packet, out Segment segment)
    {
        segment = default;
        if (packet.Length < 40) return false;
        int ipHeaderLength;
        bool ipv4;
        switch (packet[0] >> 4)
        {
            case 4:
                if (packet[0] != 0x45 || packet[9] != Tcp || BinaryPrimitives.ReadUInt16BigEndian(packet[2..]) != packet.Length
                    || (BinaryPrimitives.ReadUInt16BigEndian(packet[6..]) & 0x3fff) != 0) return false;
                ipHeaderLength = 20;
                ipv4 = true;
                break;
            case 6:
                if (packet.Length < 60 || packet[6] != Tcp || BinaryPrimitives.ReadUInt16BigEndian(packet[4..]) != packet.Length - 40) return false;
                ipHeaderLength = 40;
                ipv4 = false;
                break;
            default:
                return false;
        }
        var tcpHeaderLength = (packet[ipHeaderLength + 12] >> 4) * 4;
        var payload = packet.Length - ipHeaderLength - tcpHeaderLength;
        if (tcpHeaderLength < 20 || payload <= 0) return false;
        if (Segmentation.TransportChecksum(packet, ipv4, ipHeaderLength, Tcp) != 0) return false;
        segment = new Segment(ipv4, ipHeaderLength, tcpHeaderLength, payload,
            BinaryPrimitives.ReadUInt32BigEndian(packet[(ipHeaderLength + 4)..]), packet[ipHeaderLength + 13]);
        return true;
    }
}

/// <summary>Where <see cref="Coalescing.Flush"/> puts frames: a TUN device in production, a list in tests.</summary>
public interface IFrameWriter
{
    void Write(ReadOnlySpan<byte> frame);
}
