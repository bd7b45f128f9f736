using System.Runtime.InteropServices;

namespace Mesh.WireGuard.Crypto;

/// <summary>
/// The libsodium calls the data path makes itself: the library NSec ships and loads, used directly for transport
/// keys because an NSec key costs four memory mappings (guard pages) and the kernel's limit of 65,530 mappings
/// ended the process at about 21,000 keys here; a mesh agent holds two per live session.
/// </summary>
internal static class Sodium
{
    private const string Library = "libsodium";

    static Sodium()
    {
        // Picks the fastest ChaCha20 and Poly1305 for this CPU; safe to call more than once (NSec calls it too).
        if (sodium_init() < 0) throw new InvalidOperationException("libsodium failed to initialize.");
    }

    /// <summary>Runs the static initializer; every entry point calls it before its first use of the library.</summary>
    public static void EnsureInitialized()
    {
    }

    [DllImport(Library)]
    private static extern int sodium_init();

    [DllImport(Library)]
    public static extern int crypto_aead_chacha20poly1305_ietf_encrypt_detached(
        ref byte c, ref byte mac, nint maclen, in byte m, ulong mlen, in byte ad, ulong adlen, nint nsec, in byte npub, in byte k);

    /// <summary>0 when the tag verified, -1 otherwise (the plaintext is then not written).</summary>
    [DllImport(Library)]
    public static extern int crypto_aead_chacha20poly1305_ietf_decrypt_detached(
        ref byte m, nint nsec, in byte c, ulong clen, in byte mac, in byte ad, ulong adlen, in byte npub, in byte k);
}
