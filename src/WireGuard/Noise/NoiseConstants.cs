using Mesh.WireGuard.Crypto;

namespace Mesh.WireGuard.Noise;

/// <summary>The strings and initial values of WireGuard's Noise_IKpsk2 construction (whitepaper section 5.4).</summary>
public static class NoiseConstants
{
    public static ReadOnlySpan<byte> Construction => "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"u8;
    public static ReadOnlySpan<byte> Identifier => "WireGuard v1 zx2c4 Jason@zx2c4.com"u8;
    public static ReadOnlySpan<byte> LabelMac1 => "mac1----"u8;
    public static ReadOnlySpan<byte> LabelCookie => "cookie--"u8;

    /// <summary>BLAKE2s(Construction).</summary>
    public static readonly byte[] InitialChainingKey = HashOf(Construction);

    /// <summary>BLAKE2s(InitialChainingKey || Identifier).</summary>
    public static readonly byte[] InitialHash = HashOf(InitialChainingKey, Identifier);

    private static byte[] HashOf(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b = default)
    {
        var output = new byte[Blake2s.HashSize];
        Blake2s.Hash(output, a, b);
        return output;
    }
}
