using System.Security.Cryptography;
using NSec.Cryptography;

namespace Mesh.WireGuard.Crypto;

/// <summary>
/// Curve25519 Diffie-Hellman (RFC 7748), all of it libsodium. Long-lived private keys (node and interface keys)
/// live in NSec <see cref="Key"/> objects, in libsodium's guarded memory. A handshake's ephemeral keys live for
/// one handshake in memory the handshake zeroes, and go to libsodium directly (see <see cref="Sodium"/> for why).
/// Shared secrets are only ever written into the caller's span.
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

    /// <summary>A handshake ephemeral: a private key from the entropy source and its public key.</summary>
    public static void GenerateEphemeral(Span<byte> privateKey, Span<byte> publicKey, IEntropy entropy)
    {
        if (publicKey.Length < KeySize) throw new ArgumentException($"An X25519 public key is {KeySize} bytes.", nameof(publicKey));
        GeneratePrivateKey(privateKey, entropy);
        Sodium.EnsureInitialized();
        Sodium.crypto_scalarmult_curve25519_base(ref publicKey[0], in privateKey[0]);
    }

    /// <summary>DH of an ephemeral private key with a public key; false (and zeros) for a low-order point.</summary>
    public static bool EphemeralSharedSecret(Span<byte> shared, ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> publicKey)
    {
        if (shared.Length < KeySize || privateKey.Length < KeySize || publicKey.Length < KeySize) throw new ArgumentException($"X25519 keys and secrets are {KeySize} bytes.");
        Sodium.EnsureInitialized();
        if (Sodium.crypto_scalarmult_curve25519(ref shared[0], in privateKey[0], in publicKey[0]) == 0) return true;
        shared[..KeySize].Clear();
        return false;
    }

    /// <summary>
    /// DH of a static private key kept in guarded memory with a public key, for handshakes; false (and zeros) for a
    /// low-order point. NSec's <see cref="SharedSecret"/> maps fresh guarded pages for every secret, and those
    /// mmap/mprotect calls take the process's memory-map lock: handshakes on several cores waited on each other there.
    /// </summary>
    internal static bool StaticSharedSecret(Span<byte> shared, GuardedBytes privateKey, ReadOnlySpan<byte> publicKey)
    {
        if (shared.Length < KeySize || publicKey.Length < KeySize) throw new ArgumentException($"X25519 keys and secrets are {KeySize} bytes.");
        var added = false;
        try
        {
            privateKey.DangerousAddRef(ref added);
            if (Sodium.crypto_scalarmult_curve25519_at(ref shared[0], privateKey.DangerousGetHandle(), in publicKey[0]) == 0) return true;
        }
        finally
        {
            if (added) privateKey.DangerousRelease();
        }
        shared[..KeySize].Clear();
        return false;
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
