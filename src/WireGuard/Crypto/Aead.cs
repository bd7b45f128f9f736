using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Mesh.WireGuard.Crypto;

/// <summary>
/// ChaCha20-Poly1305 (RFC 8439) with WireGuard's nonce: 4 zero bytes then a 64-bit little-endian counter.
/// One instance holds one key; it is not safe for concurrent use, so the data path keeps one per worker.
/// </summary>
public sealed class Aead : IDisposable
{
    public const int KeySize = 32;
    public const int TagSize = 16;

    private readonly ChaCha20Poly1305 _cipher;

    public Aead(ReadOnlySpan<byte> key) => _cipher = new ChaCha20Poly1305(key);

    public void Seal(ulong counter, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData, Span<byte> ciphertextAndTag)
    {
        Span<byte> nonce = stackalloc byte[12];
        Nonce(nonce, counter);
        _cipher.Encrypt(nonce, plaintext, ciphertextAndTag[..plaintext.Length], ciphertextAndTag.Slice(plaintext.Length, TagSize), associatedData);
    }

    /// <summary>False when the tag does not verify; the plaintext is then left cleared.</summary>
    public bool Open(ulong counter, ReadOnlySpan<byte> ciphertextAndTag, ReadOnlySpan<byte> associatedData, Span<byte> plaintext)
    {
        if (ciphertextAndTag.Length < TagSize) return false;
        Span<byte> nonce = stackalloc byte[12];
        Nonce(nonce, counter);
        var length = ciphertextAndTag.Length - TagSize;
        try
        {
            _cipher.Decrypt(nonce, ciphertextAndTag[..length], ciphertextAndTag[length..], plaintext[..length], associatedData);
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }
    }

    public void Dispose() => _cipher.Dispose();

    /// <summary>One-shot sealing with a key used once (the handshake's).</summary>
    public static void Seal(ReadOnlySpan<byte> key, ulong counter, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData, Span<byte> ciphertextAndTag)
    {
        using var aead = new Aead(key);
        aead.Seal(counter, plaintext, associatedData, ciphertextAndTag);
    }

    public static bool Open(ReadOnlySpan<byte> key, ulong counter, ReadOnlySpan<byte> ciphertextAndTag, ReadOnlySpan<byte> associatedData, Span<byte> plaintext)
    {
        using var aead = new Aead(key);
        return aead.Open(counter, ciphertextAndTag, associatedData, plaintext);
    }

    private static void Nonce(Span<byte> nonce, ulong counter)
    {
        nonce[..4].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], counter);
    }
}

/// <summary>XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha): HChaCha20 subkey, then ChaCha20-Poly1305 with the last 8 nonce bytes.</summary>
public static class XAead
{
    public const int NonceSize = 24;

    public static void Seal(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce24, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData, Span<byte> ciphertextAndTag)
    {
        Span<byte> subkey = stackalloc byte[32];
        HChaCha20.DeriveSubkey(subkey, key, nonce24[..16]);
        Span<byte> nonce = stackalloc byte[12];
        InnerNonce(nonce24, nonce);
        using (var cipher = new ChaCha20Poly1305(subkey))
        {
            cipher.Encrypt(nonce, plaintext, ciphertextAndTag[..plaintext.Length], ciphertextAndTag.Slice(plaintext.Length, Aead.TagSize), associatedData);
        }
        subkey.Clear();
    }

    public static bool Open(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce24, ReadOnlySpan<byte> ciphertextAndTag, ReadOnlySpan<byte> associatedData, Span<byte> plaintext)
    {
        if (ciphertextAndTag.Length < Aead.TagSize) return false;
        Span<byte> subkey = stackalloc byte[32];
        HChaCha20.DeriveSubkey(subkey, key, nonce24[..16]);
        Span<byte> nonce = stackalloc byte[12];
        InnerNonce(nonce24, nonce);
        var length = ciphertextAndTag.Length - Aead.TagSize;
        try
        {
            using var cipher = new ChaCha20Poly1305(subkey);
            cipher.Decrypt(nonce, ciphertextAndTag[..length], ciphertextAndTag[length..], plaintext[..length], associatedData);
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }
        finally
        {
            subkey.Clear();
        }
    }

    private static void InnerNonce(ReadOnlySpan<byte> nonce24, Span<byte> nonce12)
    {
        nonce12[..4].Clear();
        nonce24[16..24].CopyTo(nonce12[4..]);
    }
}
