using System.Runtime.InteropServices;

namespace Mesh.WireGuard.Crypto;

/// <summary>
/// The libsodium calls made directly rather than through NSec (the same library, which NSec ships and loads),
/// where NSec's guarded memory costs too much: every NSec key and shared secret is a fresh mapping with guard
/// pages (mmap, mprotect, mlock and back). For transport keys, the kernel's limit of 65,530 mappings ended a
/// process at about 21,000 keys here, and a mesh agent holds two per live session; for handshake ephemerals and
/// their shared secrets, those system calls were 43% of a handshake's time.
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

    /// <summary>0, or -1 when the result is all zeros (a low-order point).</summary>
    [DllImport(Library)]
    public static extern int crypto_scalarmult_curve25519(ref byte q, in byte n, in byte p);

    /// <summary>The same with the scalar in unmanaged memory (a <see cref="GuardedBytes"/>).</summary>
    [DllImport(Library, EntryPoint = "crypto_scalarmult_curve25519")]
    public static extern int crypto_scalarmult_curve25519_at(ref byte q, nint n, in byte p);

    [DllImport(Library)]
    public static extern int crypto_scalarmult_curve25519_base(ref byte q, in byte n);

    [DllImport(Library)]
    public static extern nint sodium_malloc(nuint size);

    [DllImport(Library)]
    public static extern void sodium_free(nint pointer);

    [DllImport(Library)]
    public static extern int sodium_mprotect_readonly(nint pointer);

    [DllImport(Library)]
    public static extern int crypto_aead_chacha20poly1305_ietf_encrypt_detached(
        ref byte c, ref byte mac, nint maclen, in byte m, ulong mlen, in byte ad, ulong adlen, nint nsec, in byte npub, in byte k);

    /// <summary>Seals without associated data: plaintext.Length + 16 bytes into <paramref name="output"/> (in place when both start at the same byte).</summary>
    public static void Seal(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        output = output[..(plaintext.Length + Aead.TagSize)];
        // No associated data and maybe no plaintext: the nonce stands in as a valid pointer libsodium reads zero bytes from.
        crypto_aead_chacha20poly1305_ietf_encrypt_detached(ref MemoryMarshal.GetReference(output), ref output[plaintext.Length], 0,
            in plaintext.IsEmpty ? ref MemoryMarshal.GetReference(nonce) : ref MemoryMarshal.GetReference(plaintext), (ulong)plaintext.Length,
            in nonce[0], 0, 0, in nonce[0], in key[0]);
    }

    /// <summary>0 when the tag verified, -1 otherwise (the plaintext is then not written).</summary>
    [DllImport(Library)]
    public static extern int crypto_aead_chacha20poly1305_ietf_decrypt_detached(
        ref byte m, nint nsec, in byte c, ulong clen, in byte mac, in byte ad, ulong adlen, in byte npub, in byte k);
}

/// <summary>
/// Secret bytes in libsodium's guarded memory (guard pages, locked, read-only once written), made once and
/// used many times. Freed when the last user lets go: a handshake in flight keeps it alive through a key change.
/// </summary>
internal sealed class GuardedBytes : SafeHandle
{
    public GuardedBytes(ReadOnlySpan<byte> secret) : base(0, ownsHandle: true)
    {
        Sodium.EnsureInitialized();
        var pointer = Sodium.sodium_malloc((nuint)secret.Length);
        if (pointer == 0) throw new OutOfMemoryException("libsodium could not allocate guarded memory.");
        for (var i = 0; i < secret.Length; i++) Marshal.WriteByte(pointer, i, secret[i]);
        Sodium.sodium_mprotect_readonly(pointer);
        SetHandle(pointer);
    }

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        Sodium.sodium_free(handle);
        return true;
    }
}
