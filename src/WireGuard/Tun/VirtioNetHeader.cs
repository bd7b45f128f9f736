using System.Buffers.Binary;

namespace Mesh.WireGuard.Tun;

/// <summary>
/// struct virtio_net_hdr, which a TUN device opened with IFF_VNET_HDR puts before every packet: whether the
/// packet is a segmentation-offload super-packet (TSO, USO) to split, and where a checksum is left to finish.
/// </summary>
internal readonly record struct VirtioNetHeader(byte Flags, byte GsoType, ushort HeaderLength, ushort GsoSize, ushort ChecksumStart, ushort ChecksumOffset)
{
    public const int Size = 10;
    public const byte NeedsChecksum = 1;
    public const byte GsoNone = 0;
    public const byte GsoTcpV4 = 1;
    public const byte GsoTcpV6 = 4;
    public const byte GsoUdpL4 = 5;
    public const byte GsoEcn = 0x80;

    public static VirtioNetHeader Read(ReadOnlySpan<byte> bytes) => new(
        bytes[0],
        bytes[1],
        BinaryPrimitives.ReadUInt16LittleEndian(bytes[2..]),
        BinaryPrimitives.ReadUInt16LittleEndian(bytes[4..]),
        BinaryPrimitives.ReadUInt16LittleEndian(bytes[6..]),
        BinaryPrimitives.ReadUInt16LittleEndian(bytes[8..]));

    public void Write(Span<byte> bytes)
    {
        bytes[0] = Flags;
        bytes[1] = GsoType;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[2..], HeaderLength);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[4..], GsoSize);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[6..], ChecksumStart);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[8..], ChecksumOffset);
    }
}
