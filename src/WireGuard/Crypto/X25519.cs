using System.Security.Cryptography;
using BcX25519 = Org.BouncyCastle.Math.EC.Rfc7748.X25519;

namespace Mesh.WireGuard.Crypto;

/// <summary>Curve25519 Diffie-Hellman (RFC 7748).</summary>
public static class X25519
{
    public const int KeySize = 32;

    /// <summary>Random bytes clamped the way `wg genkey` clamps them.</summary>
    public static void GeneratePrivateKey(Span<byte> privateKey, IEntropy entropy)
    {
        entropy.Fill(privateKey[..KeySize]);
        Clamp(privateKey);
    }

    public static void Clamp(Span<byte> privateKey)
    {
        privateKey[0] &= 248;
        privateKey[31] = (byte)((privateKey[31] & 127) | 64);
    }

    public static void PublicKey(Span<byte> publicKey, ReadOnlySpan<byte> privateKey)
    {
        var k = privateKey[..KeySize].ToArray();
        var r = new byte[KeySize];
        BcX25519.ScalarMultBase(k, 0, r, 0);
        r.CopyTo(publicKey);
        CryptographicOperations.ZeroMemory(k);
    }

    /// <summary>The shared secret; false when it is all zeros (a low-order point), which WireGuard refuses.</summary>
    public static bool SharedSecret(Span<byte> shared, ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> publicKey)
    {
        var k = privateKey[..KeySize].ToArray();
        var u = publicKey[..KeySize].ToArray();
        var r = new byte[KeySize];
        BcX25519.ScalarMult(k, 0, u, 0, r, 0);
        r.CopyTo(shared);
        CryptographicOperations.ZeroMemory(k);
        CryptographicOperations.ZeroMemory(r);
        var acc = 0;
        foreach (var b in shared[..KeySize]) acc |= b;
        return acc != 0;
    }
}
