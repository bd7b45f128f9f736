using Org.BouncyCastle.Crypto.Digests;

namespace Mesh.WireGuard.Crypto;

/// <summary>BLAKE2s (RFC 7693): the hash, the keyed MAC and HMAC-BLAKE2s that WireGuard's KDF is built on.</summary>
public static class Blake2s
{
    public const int HashSize = 32;
    public const int MacSize = 16;
    private const int BlockSize = 64;

    /// <summary>BLAKE2s-256 of the concatenated inputs.</summary>
    public static void Hash(Span<byte> output, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b = default)
    {
        var digest = new Blake2sDigest(HashSize * 8);
        Update(digest, a);
        Update(digest, b);
        Finish(digest, output[..HashSize]);
    }

    /// <summary>Keyed BLAKE2s with a 16-byte output (WireGuard's MAC).</summary>
    public static void Mac(Span<byte> output, ReadOnlySpan<byte> key, ReadOnlySpan<byte> input)
    {
        var digest = new Blake2sDigest(key.ToArray(), MacSize, null, null);
        Update(digest, input);
        Finish(digest, output[..MacSize]);
    }

    /// <summary>HMAC (RFC 2104) over BLAKE2s-256, block size 64.</summary>
    public static void Hmac(Span<byte> output, ReadOnlySpan<byte> key, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b = default)
    {
        Span<byte> pad = stackalloc byte[BlockSize];
        Span<byte> inner = stackalloc byte[HashSize];
        if (key.Length > BlockSize)
        {
            Span<byte> hashedKey = stackalloc byte[HashSize];
            Hash(hashedKey, key);
            key = hashedKey.ToArray();
        }

        pad.Clear();
        key.CopyTo(pad);
        for (var i = 0; i < BlockSize; i++) pad[i] ^= 0x36;
        var digest = new Blake2sDigest(HashSize * 8);
        Update(digest, pad);
        Update(digest, a);
        Update(digest, b);
        Finish(digest, inner);

        pad.Clear();
        key.CopyTo(pad);
        for (var i = 0; i < BlockSize; i++) pad[i] ^= 0x5c;
        digest = new Blake2sDigest(HashSize * 8);
        Update(digest, pad);
        Update(digest, inner);
        Finish(digest, output[..HashSize]);
        pad.Clear();
        inner.Clear();
    }

    private static void Update(Blake2sDigest digest, ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty) return;
        var array = input.ToArray();
        digest.BlockUpdate(array, 0, array.Length);
        Array.Clear(array);
    }

    private static void Finish(Blake2sDigest digest, Span<byte> output)
    {
        var result = new byte[digest.GetDigestSize()];
        digest.DoFinal(result, 0);
        result.CopyTo(output);
        Array.Clear(result);
    }
}
