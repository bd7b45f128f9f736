using System.Security.Cryptography;
using System.Text;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;

namespace Mesh.Control;

/// <summary>
/// Proof that a registering agent holds the private key of the node key it names: BLAKE2s-256 keyed with
/// X25519(node private, coordinator public) over a fresh single-use nonce and every field of the request.
/// Only the node's private key (or the coordinator's) can compute it; the nonce makes it unusable twice.
/// </summary>
public static class RegistrationProof
{
    public const int Size = 32;
    private static ReadOnlySpan<byte> Label => "mesh register v1"u8;

    public static byte[] Compute(PrivateKey nodeKey, PublicKey coordinatorKey, ReadOnlySpan<byte> nonce, string authKey, string hostname)
    {
        Span<byte> shared = stackalloc byte[32];
        if (!nodeKey.SharedSecret(shared, coordinatorKey)) throw new ArgumentException("The coordinator key is a low-order point.", nameof(coordinatorKey));
        return Mac(shared, nodeKey.PublicKey, nonce, authKey, hostname);
    }

    public static bool Verify(PrivateKey coordinatorKey, PublicKey nodeKey, ReadOnlySpan<byte> nonce, string authKey, string hostname, ReadOnlySpan<byte> proof)
    {
        if (proof.Length != Size) return false;
        Span<byte> shared = stackalloc byte[32];
        if (!coordinatorKey.SharedSecret(shared, nodeKey)) return false;
        return CryptographicOperations.FixedTimeEquals(Mac(shared, nodeKey, nonce, authKey, hostname), proof);
    }

    private static byte[] Mac(Span<byte> shared, PublicKey nodeKey, ReadOnlySpan<byte> nonce, string authKey, string hostname)
    {
        // Length-prefixed fields, so no two different requests share a transcript.
        using var transcript = new MemoryStream();
        Write(transcript, Label);
        Write(transcript, nodeKey.Span);
        Write(transcript, nonce);
        Write(transcript, Encoding.UTF8.GetBytes(authKey));
        Write(transcript, Encoding.UTF8.GetBytes(hostname));
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
