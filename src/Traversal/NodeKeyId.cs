using System.Buffers.Binary;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal;

/// <summary>A node key as a value, for lookups on the data path without allocating a <see cref="PublicKey"/> per packet.</summary>
public readonly record struct NodeKeyId(ulong A, ulong B, ulong C, ulong D)
{
    public static NodeKeyId From(ReadOnlySpan<byte> key32) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(key32),
        BinaryPrimitives.ReadUInt64LittleEndian(key32[8..]),
        BinaryPrimitives.ReadUInt64LittleEndian(key32[16..]),
        BinaryPrimitives.ReadUInt64LittleEndian(key32[24..]));

    public static NodeKeyId From(PublicKey key) => From(key.Span);
}
