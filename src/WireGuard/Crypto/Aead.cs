using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using NSec.Cryptography;

namespace Mesh.WireGuard.Crypto;

/// <summary>
/// ChaCha20-Poly1305 (RFC 8439) with WireGuard's nonce (4 zero bytes, then a 64-bit little-endian counter)
/// for the handshake's one-shot keys, through libsodium: no key setup at all, and nothing shared between
/// threads (.NET's OpenSSL cipher objects measured no faster per key and took OpenSSL's process-wide locks, so
/// handshakes on several cores waited on each other). The data path uses <see cref="TransportAead"/>.
/// </summary>
public static class Aead
{
    public const int KeySize = 32;
    public const int TagSize = 16;
    internal const int NonceSize = 12;

    public static void Seal(ReadOnlySpan<byte> key, ulong counter, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData, Span<byte> ciphertextAndTag)
    {
        if (key.Length < KeySize) throw new ArgumentException($"A ChaCha20-Poly1305 key is {KeySize} bytes.", nameof(key));
        var output = ciphertextAndTag[..(plaintext.Length + TagSize)];
        Span<byte> nonce = stackalloc byte[NonceSize];
        WriteNonce(nonce, counter);
        Sodium.EnsureInitialized();
        // Empty inputs point at the nonce: a valid address libsodium reads zero bytes from.
        Sodium.crypto_aead_chacha20poly1305_ietf_encrypt_detached(
            ref output[0], ref output[plaintext.Length], 0,
            in plaintext.IsEmpty ? ref nonce[0] : ref MemoryMarshal.GetReference(plaintext), (ulong)plaintext.Length,
            in associatedData.IsEmpty ? ref nonce[0] : ref MemoryMarshal.GetReference(associatedData), (ulong)associatedData.Length,
            0, in nonce[0], in key[0]);
    }

    /// <summary>False when the tag does not verify; the plaintext is then not written.</summary>
    public static bool Open(ReadOnlySpan<byte> key, ulong counter, ReadOnlySpan<byte> ciphertextAndTag, ReadOnlySpan<byte> associatedData, Span<byte> plaintext)
    {
        if (ciphertextAndTag.Length < TagSize || key.Length < KeySize) return false;
        var length = ciphertextAndTag.Length - TagSize;
        Span<byte> nonce = stackalloc byte[NonceSize];
        WriteNonce(nonce, counter);
        Sodium.EnsureInitialized();
        var output = plaintext[..length];
        return Sodium.crypto_aead_chacha20poly1305_ietf_decrypt_detached(
            ref output.IsEmpty ? ref nonce[0] : ref MemoryMarshal.GetReference(output), 0,
            in ciphertextAndTag[0], (ulong)length, in ciphertextAndTag[length],
            in associatedData.IsEmpty ? ref nonce[0] : ref MemoryMarshal.GetReference(associatedData), (ulong)associatedData.Length,
            in nonce[0], in key[0]) == 0;
    }

    internal static void WriteNonce(Span<byte> nonce, ulong counter)
    {
        nonce[..4].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], counter);
    }
}

/// <summary>
/// One transport key's ChaCha20-Poly1305, through the implementation <see cref="TransportCipher"/> chose for this
/// machine (libcrypto's EVP interface or libsodium; see <see cref="Sodium"/> for why not an NSec key): any number
/// of threads may seal and open at once, a forged packet costs a false and no exception, and the key sits in
/// pinned memory that is zeroed on dispose.
/// </summary>
public sealed class TransportAead : IDisposable
{
    private readonly byte[] _key = GC.AllocateArray<byte>(Aead.KeySize, pinned: true);
    private volatile bool _disposed;

    public TransportAead(ReadOnlySpan<byte> key)
    {
        Sodium.EnsureInitialized();
        key[..Aead.KeySize].CopyTo(_key);
    }

    /// <summary>Writes plaintext.Length + 16 bytes (in place when both start at the same byte); false once disposed.</summary>
    public bool Seal(ulong counter, ReadOnlySpan<byte> plaintext, Span<byte> ciphertextAndTag)
    {
        if (_disposed) return false;
        Span<byte> nonce = stackalloc byte[Aead.NonceSize];
        Aead.WriteNonce(nonce, counter);
        if (TransportCipher.OpenSsl) return OpenSslAead.Seal(_key, nonce, plaintext, ciphertextAndTag) && !_disposed;
        Sodium.Seal(_key, nonce, plaintext, ciphertextAndTag);
        return !_disposed;
    }

    /// <summary>
    /// False when the tag does not verify (or the key is gone); writes ciphertext.Length - 16 bytes, which are
    /// garbage after a false (decrypted before the tag was checked, or not written at all).
    /// </summary>
    public bool Open(ulong counter, ReadOnlySpan<byte> ciphertextAndTag, Span<byte> plaintext)
    {
        if (_disposed || ciphertextAndTag.Length < Aead.TagSize) return false;
        Span<byte> nonce = stackalloc byte[Aead.NonceSize];
        Aead.WriteNonce(nonce, counter);
        if (TransportCipher.OpenSsl) return OpenSslAead.Open(_key, nonce, ciphertextAndTag, plaintext) && !_disposed;
        var length = ciphertextAndTag.Length - Aead.TagSize;
        var output = plaintext[..length];
        return Sodium.crypto_aead_chacha20poly1305_ietf_decrypt_detached(
            ref MemoryMarshal.GetReference(output), 0, in MemoryMarshal.GetReference(ciphertextAndTag), (ulong)length,
            in ciphertextAndTag[length], in nonce[0], 0, in nonce[0], in _key[0]) == 0 && !_disposed;
    }

    /// <summary>Wipes the key; a seal or open racing with it fails rather than use a zeroed key unnoticed.</summary>
    public void Dispose()
    {
        _disposed = true;
        CryptographicOperations.ZeroMemory(_key);
    }
}

/// <summary>XChaCha20-Poly1305 through NSec, for cookie replies; the key is an NSec key made once per peer.</summary>
public static class XAead
{
    public const int NonceSize = 24;

    private static readonly AeadAlgorithm Algorithm = AeadAlgorithm.XChaCha20Poly1305;

    public static Key ImportKey(ReadOnlySpan<byte> key) => Key.Import(Algorithm, key[..Aead.KeySize], KeyBlobFormat.RawSymmetricKey);

    public static void Seal(Key key, ReadOnlySpan<byte> nonce24, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData, Span<byte> ciphertextAndTag) =>
        Algorithm.Encrypt(key, nonce24[..NonceSize], associatedData, plaintext, ciphertextAndTag[..(plaintext.Length + Aead.TagSize)]);

    public static bool Open(Key key, ReadOnlySpan<byte> nonce24, ReadOnlySpan<byte> ciphertextAndTag, ReadOnlySpan<byte> associatedData, Span<byte> plaintext) =>
        ciphertextAndTag.Length >= Aead.TagSize
        && Algorithm.Decrypt(key, nonce24[..NonceSize], associatedData, ciphertextAndTag, plaintext[..(ciphertextAndTag.Length - Aead.TagSize)]);
}
