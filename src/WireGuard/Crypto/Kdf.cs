namespace Mesh.WireGuard.Crypto;

/// <summary>WireGuard's HKDF over HMAC-BLAKE2s: one, two or three 32-byte outputs from a chaining key and input.</summary>
public static class Kdf
{
    public static void Derive1(Span<byte> t1, ReadOnlySpan<byte> key, ReadOnlySpan<byte> input)
    {
        Span<byte> t0 = stackalloc byte[Blake2s.HashSize];
        Blake2s.Hmac(t0, key, input);
        Blake2s.Hmac(t1, t0, [1]);
        t0.Clear();
    }

    public static void Derive2(Span<byte> t1, Span<byte> t2, ReadOnlySpan<byte> key, ReadOnlySpan<byte> input)
    {
        Span<byte> t0 = stackalloc byte[Blake2s.HashSize];
        Blake2s.Hmac(t0, key, input);
        Blake2s.Hmac(t1, t0, [1]);
        Blake2s.Hmac(t2, t0, t1, [2]);
        t0.Clear();
    }

    public static void Derive3(Span<byte> t1, Span<byte> t2, Span<byte> t3, ReadOnlySpan<byte> key, ReadOnlySpan<byte> input)
    {
        Span<byte> t0 = stackalloc byte[Blake2s.HashSize];
        Blake2s.Hmac(t0, key, input);
        Blake2s.Hmac(t1, t0, [1]);
        Blake2s.Hmac(t2, t0, t1, [2]);
        Blake2s.Hmac(t3, t0, t2, [3]);
        t0.Clear();
    }
}
