using System.Security.Cryptography;
using System.Text;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;

namespace Mesh.Control;

/// <summary>
/// Proof that an agent holds the private key of the node key it names: BLAKE2s-256 keyed with
/// X25519(node private, coordinator public) over a fresh single-use nonce and every field of the request. Only the
/// node's private key (or the coordinator's) can compute it; the nonce makes it unusable twice. A registration
/// proves the key once; each sync stream's hello proves it again over its session token, so a copied token
/// alone opens nothing.
/// </summary>
public static class RegistrationProof
{
    public const int Size = 32;
    private static ReadOnlySpan<byte> RegisterLabel => "mesh register v1"u8;
    private static ReadOnlySpan<byte> SyncLabel => "mesh sync v1"u8;

    public static byte[] Compute(PrivateKey nodeKey, PublicKey coordinatorKey, ReadOnlySpan<byte> nonce, string authKey, string hostname) =>
        Compute(RegisterLabel, nodeKey, coordinatorKey, nonce, authKey, hostname);

    public static bool Verify(PrivateKey coordinatorKey, PublicKey nodeKey, ReadOnlySpan<byte> nonce, string authKey, string hostname, ReadOnlySpan<byte> proof) =>
        Verify(RegisterLabel, coordinatorKey, nodeKey, nonce, authKey, hostname, proof);

    /// <summary>The proof a sync stream's hello carries, over the stream's session token.</summary>
    public static byte[] ComputeForSync(PrivateKey nodeKey, PublicKey coordinatorKey, ReadOnlySpan<byte> nonce, string sessionToken) =>
        Compute(SyncLabel, nodeKey, coordinatorKey, nonce, sessionToken, "");

    public static bool VerifyForSync(PrivateKey coordinatorKey, PublicKey nodeKey, ReadOnlySpan<byte> nonce, string sessionToken, ReadOnlySpan<byte> proof) =>
        Verify(SyncLabel, coordinatorKey, nodeKey, nonce, sessionToken, "", proof);

    private static byte[] Compute(ReadOnlySpan<byte> label, PrivateKey nodeKey, PublicKey coordinatorKey, ReadOnlySpan<byte> nonce, string first, string second)
    {
        Span<byte> shared = stackalloc byte[32];
        if (!nodeKey.SharedSecret(shared, coordinatorKey)) throw new ArgumentException("The coordinator key is a low-order point.", nameof(coordinatorKey));
        return Mac(label, shared, nodeKey.PublicKey, nonce, first, second);
    }

    private static bool Verify(ReadOnlySpan<byte> label, PrivateKey coordinatorKey, PublicKey nodeKey, ReadOnlySpan<byte> nonce, string first, string second, ReadOnlySpan<byte> proof)
    {
        if (proof.Length != Size) return false;
        Span<byte> shared = stackalloc byte[32];
        if (!coordinatorKey.SharedSecret(shared, nodeKey)) return false;
        return CryptographicOperations.FixedTimeEquals(Mac(label, shared, nodeKey, nonce, first, second), proof);
    }

    private static byte[] Mac(ReadOnlySpan<byte> label, Span<byte> shared, PublicKey nodeKey, ReadOnlySpan<byte> nonce, string first, string second)
    {
        // Length-prefixed fields, so no two different requests share a transcript.
        using var transcript = new MemoryStream();
        Write(transcript, label);
        Write(transcript, nodeKey.Span);
        Write(transcript, nonce);
        Write(transcript, Encoding.UTF8.GetBytes(first));
        Write(transcript, Encoding.UTF8.GetBytes(second));
        var key = new byte[32];
        Blake2s.Hash(key, shared);
        shared.Clear();
        var output = new byte[Size];
        Blake2s.Hmac(output, key, transcript.ToArray());
        CryptographicOperations.ZeroMemory(key);
        return output;
    }

    private static void Write(Stream stream, ReadOnlySpan<byte> field)
    {
        Span<byte> length = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(length, field.Length);
        stream.Write(length);
        stream.Write(field);
    }
}
