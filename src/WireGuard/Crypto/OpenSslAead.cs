using System.Runtime.InteropServices;

namespace Mesh.WireGuard.Crypto;

/// <summary>
/// ChaCha20-Poly1305 through libcrypto's EVP interface, called directly: .NET's ChaCha20Poly1305 class runs the
/// same OpenSSL code but throws on a forged tag (an exception per hostile packet) and keeps one context per key
/// object. Here each thread keeps one sealing and one opening context with the cipher fetched once, and a packet
/// only sets the key and nonce on it (ChaCha20 has no key schedule to cache), so nothing is shared between
/// threads and no provider lookup or lock runs per packet. A thread's contexts live as long as the process: the
/// threads that seal and open are the interface's long-lived workers.
/// </summary>
internal static class OpenSslAead
{
    private const string Library = "libcrypto.so.3";
    private const int CtrlAeadGetTag = 0x10;
    private const int CtrlAeadSetTag = 0x11;

    private static readonly nint Cipher = Fetch();

    [ThreadStatic] private static nint t_seal;
    [ThreadStatic] private static nint t_open;

    /// <summary>Whether libcrypto (OpenSSL 3) loaded here and has ChaCha20-Poly1305.</summary>
    public static bool Available => Cipher != 0;

    /// <summary>Writes plaintext.Length + 16 bytes; in place when both start at the same byte.</summary>
    public static bool Seal(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> ciphertextAndTag)
    {
        var context = t_seal != 0 ? t_seal : t_seal = NewContext(encrypt: 1);
        if (context == 0 || EVP_CipherInit_ex2(context, 0, in key[0], in nonce[0], -1, 0) != 1) return false;
        var output = ciphertextAndTag[..(plaintext.Length + Aead.TagSize)];
        // An empty plaintext points at the nonce: a valid address OpenSSL reads zero bytes from.
        ref readonly var input = ref plaintext.IsEmpty ? ref MemoryMarshal.GetReference(nonce) : ref MemoryMarshal.GetReference(plaintext);
        if (EVP_CipherUpdate(context, ref MemoryMarshal.GetReference(output), out var written, in input, plaintext.Length) != 1) return false;
        if (EVP_CipherFinal_ex(context, ref output[written], out _) != 1) return false;
        return EVP_CIPHER_CTX_ctrl(context, CtrlAeadGetTag, Aead.TagSize, ref output[plaintext.Length]) == 1;
    }

    /// <summary>False when the tag does not verify; the plaintext (ciphertext.Length - 16 bytes) is written either way.</summary>
    public static bool Open(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertextAndTag, Span<byte> plaintext)
    {
        var context = t_open != 0 ? t_open : t_open = NewContext(encrypt: 0);
        if (context == 0 || EVP_CipherInit_ex2(context, 0, in key[0], in nonce[0], -1, 0) != 1) return false;
        var length = ciphertextAndTag.Length - Aead.TagSize;
        // The tag goes in first (OpenSSL copies it); it is read, never written, despite the API's pointer.
        ref var tag = ref MemoryMarshal.GetReference(ciphertextAndTag[length..]);
        if (EVP_CIPHER_CTX_ctrl(context, CtrlAeadSetTag, Aead.TagSize, ref tag) != 1) return false;
        var output = plaintext[..length];
        var written = 0;
        if (length > 0 && EVP_CipherUpdate(context, ref MemoryMarshal.GetReference(output), out written, in ciphertextAndTag[0], length) != 1) return false;
        // Final writes nothing for this stream cipher: it checks the tag. An empty output points at the tag.
        return EVP_CipherFinal_ex(context, ref written < output.Length ? ref output[written] : ref tag, out _) == 1;
    }

    private static nint NewContext(int encrypt)
    {
        if (Cipher == 0) return 0;
        var context = EVP_CIPHER_CTX_new();
        if (context == 0) return 0;
        if (EVP_CipherInit_ex2(context, Cipher, 0, 0, encrypt, 0) != 1)
        {
            EVP_CIPHER_CTX_free(context);
            return 0;
        }
        return context;
    }

    private static nint Fetch()
    {
        try
        {
            return EVP_CIPHER_fetch(0, "ChaCha20-Poly1305", null);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return 0;
        }
    }

    [DllImport(Library, CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern nint EVP_CIPHER_fetch(nint libraryContext, string algorithm, string? properties);

    [DllImport(Library)]
    private static extern nint EVP_CIPHER_CTX_new();

    [DllImport(Library)]
    private static extern void EVP_CIPHER_CTX_free(nint context);

    /// <summary>Binds the cipher and direction (key and nonce null), or sets key and nonce (cipher 0, enc -1: keep the direction).</summary>
    [DllImport(Library)]
    private static extern int EVP_CipherInit_ex2(nint context, nint cipher, nint key, nint nonce, int encrypt, nint parameters);

    [DllImport(Library, EntryPoint = "EVP_CipherInit_ex2")]
    private static extern int EVP_CipherInit_ex2(nint context, nint cipher, in byte key, in byte nonce, int encrypt, nint parameters);

    [DllImport(Library)]
    private static extern int EVP_CipherUpdate(nint context, ref byte output, out int written, in byte input, int length);

    [DllImport(Library)]
    private static extern int EVP_CipherFinal_ex(nint context, ref byte output, out int written);

    [DllImport(Library)]
    private static extern int EVP_CIPHER_CTX_ctrl(nint context, int type, int argument, ref byte pointer);
}
