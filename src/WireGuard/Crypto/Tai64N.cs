using System.Buffers.Binary;

namespace Mesh.WireGuard.Crypto;

/// <summary>TAI64N timestamps (12 bytes, big-endian), compared bytewise to refuse replayed or older initiations.</summary>
public static class Tai64N
{
    public const int Size = 12;
    private const ulong Base = 0x400000000000000aUL;

    // Like wireguard-go, drop the low bits of the nanoseconds so the timestamp does not leak fine timing.
    private const uint WhitenerMask = 0x1000000 - 1;

    public static void Write(Span<byte> output, DateTime utcNow)
    {
        var sinceEpoch = utcNow - DateTime.UnixEpoch;
        var seconds = (ulong)(sinceEpoch.Ticks / TimeSpan.TicksPerSecond);
        var nanos = (uint)(sinceEpoch.Ticks % TimeSpan.TicksPerSecond * 100);
        BinaryPrimitives.WriteUInt64BigEndian(output, Base + seconds);
        BinaryPrimitives.WriteUInt32BigEndian(output[8..], nanos & ~WhitenerMask);
    }

    public static bool IsAfter(ReadOnlySpan<byte> candidate, ReadOnlySpan<byte> reference) =>
        candidate[..Size].SequenceCompareTo(reference[..Size]) > 0;
}
