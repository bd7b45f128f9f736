using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal;

/// <summary>A key only two nodes can derive: KDF over X25519 of one's private and the other's public key, under a label per use.</summary>
public static class PairKey
{
    /// <summary>The 32-byte key, or null when <paramref name="remote"/> is a low-order point.</summary>
    public static byte[]? Derive(PrivateKey local, PublicKey remote, ReadOnlySpan<byte> label)
    {
        Span<byte> shared = stackalloc byte[32];
        if (!local.SharedSecret(shared, remote)) return null;
        var key = new byte[32];
        Kdf.Derive1(key, shared, label);
        shared.Clear();
        return key;
    }
}
