using System.Security.Cryptography;
using NSec.Cryptography;

namespace Mesh.WireGuard.Crypto;

/// <summary>
/// Curve25519 Diffie-Hellman (RFC 7748) through NSec (libsodium): private keys live in NSec <see cref="Key"/>
/// objects (libsodium's guarded memory), shared secrets are copied out only into the caller's span.
/// </summary>
public static class X25519
{
    public const int KeySize = 32;

    private static readonly KeyAgreementAlgorithm Algorithm = KeyAgreementAlgorithm.X25519;

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

    /// <summary>A key from 32 private bytes; exportable ones can be written out again (key files, `wg show`).</summary>
    public static Key Import(ReadOnlySpan<byte> privateKey, bool exportable) =>
        Key.Import(Algorithm, privateKey[..KeySize], KeyBlobFormat.RawPrivateKey,
            new KeyCreationParameters { ExportPolicy = exportable ? KeyExportPolicies.AllowPlaintextExport : KeyExportPolicies.None });

    /// <summary>A fresh key from the entropy source (handshake ephemerals), the seed wiped.</summary>
    public static Key Generate(IEntropy entropy)
    {
        Span<byte> seed = stackalloc byte[KeySize];
        GeneratePrivateKey(seed, entropy);
        try
        {
            return Import(seed, exportable: false);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    public static NSec.Cryptography.PublicKey ImportPublicKey(ReadOnlySpan<byte> publicKey) =>
        NSec.Cryptography.PublicKey.Import(Algorithm, publicKey[..KeySize], KeyBlobFormat.RawPublicKey);

    public static void WritePublicKey(Key key, Span<byte> publicKey)
    {
        if (!key.PublicKey.TryExport(KeyBlobFormat.RawPublicKey, publicKey[..KeySize], out _)) throw new CryptographicException("X25519 public key export failed.");
    }

    /// <summary>The shared secret; false (and zeros) when it would be all zeros (a low-order point), which WireGuard refuses.</summary>
    public static bool SharedSecret(Span<byte> shared, Key privateKey, NSec.Cryptography.PublicKey publicKey)
    {
        using var secret = Algorithm.Agree(privateKey, publicKey, new SharedSecretCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        if (secret is null || !secret.TryExport(SharedSecretBlobFormat.RawSharedSecret, shared[..KeySize], out _))
        {
            shared[..KeySize].Clear();
            return false;
        }
        return true;
    }
}
