using System.Buffers.Binary;
using System.Security.Cryptography;
using Mesh.WireGuard.Keys;

namespace Mesh.Coordinator.Control;

/// <summary>
/// The coordinator's challenges, kept nowhere: a nonce is its expiry, 8 random bytes and a MAC over both with a
/// key derived from the coordinator's private key, so issuing one costs no memory (a flood of GetChallenge calls
/// stores nothing) and every replica, sharing that key, can check any other's. A nonce is used once: whoever
/// verifies a proof over it records it in a <see cref="UsedNonces"/>.
/// </summary>
public sealed class Challenges
{
    public const int NonceSize = 32;
    private const int MacSize = 16;
    private readonly byte[] _macKey;
    private readonly PrivateKey _key;
    private readonly TimeSpan _lifetime;
    private readonly TimeProvider _time;

    public Challenges(CoordinatorIdentity identity, TimeSpan lifetime, TimeProvider time)
    {
        var secret = new byte[PrivateKey.Size];
        identity.Key.Export(secret);
        _macKey = HKDF.DeriveKey(HashAlgorithmName.SHA256, secret, 32, info: "mesh challenge v1"u8.ToArray());
        CryptographicOperations.ZeroMemory(secret);
        _key = identity.Key;
        CoordinatorKey = identity.Key.PublicKey;
        _lifetime = lifetime;
        _time = time;
    }

    public PublicKey CoordinatorKey { get; }

    public ChallengeData Issue()
    {
        var nonce = new byte[NonceSize];
        BinaryPrimitives.WriteInt64BigEndian(nonce, (_time.GetUtcNow() + _lifetime).ToUnixTimeMilliseconds());
        RandomNumberGenerator.Fill(nonce.AsSpan(8, 8));
        Mac(nonce.AsSpan(0, 16), nonce.AsSpan(16));
        return new ChallengeData(CoordinatorKey.Span.ToArray(), nonce);
    }

    /// <summary>When the nonce expires, if it is one of ours and has not; null otherwise.</summary>
    public DateTimeOffset? Expiry(ReadOnlySpan<byte> nonce)
    {
        if (nonce.Length != NonceSize) return null;
        Span<byte> expected = stackalloc byte[MacSize];
        Mac(nonce[..16], expected);
        if (!CryptographicOperations.FixedTimeEquals(expected, nonce[16..])) return null;
        var expiry = DateTimeOffset.FromUnixTimeMilliseconds(BinaryPrimitives.ReadInt64BigEndian(nonce));
        return expiry >= _time.GetUtcNow() ? expiry : null;
    }

    /// <summary>When the hello's nonce expires, if it is fresh and its proof shows the node key over it and the session token; null otherwise.</summary>
    public DateTimeOffset? VerifySync(PublicKey nodeKey, ReadOnlySpan<byte> nonce, string sessionToken, ReadOnlySpan<byte> proof) =>
        Expiry(nonce) is { } expiry && Mesh.Control.RegistrationProof.VerifyForSync(_key, nodeKey, nonce, sessionToken, proof) ? expiry : null;

    private void Mac(ReadOnlySpan<byte> data, Span<byte> mac)
    {
        Span<byte> full = stackalloc byte[32];
        HMACSHA256.HashData(_macKey, data, full);
        full[..MacSize].CopyTo(mac);
    }
}

/// <summary>
/// Nonces already used, until they expire: what makes a stateless challenge single-use. Bounded: when full of
/// unexpired nonces it refuses (the caller answers "busy") rather than grow; only nonces whose proof verified are
/// recorded, so filling it takes as many valid proofs as it holds.
/// </summary>
public sealed class UsedNonces(int capacity, TimeProvider time)
{
    private readonly Dictionary<UInt128, DateTimeOffset> _used = new();
    private readonly Queue<(DateTimeOffset Expiry, UInt128 Nonce)> _byExpiry = new();

    public int Count => _used.Count;

    public enum Outcome
    {
        Fresh,
        Replayed,
        Full,
    }

    public Outcome TryUse(ReadOnlySpan<byte> nonce, DateTimeOffset expiry)
    {
        // The random half and the MAC identify a nonce: a forged one never gets here.
        var id = BinaryPrimitives.ReadUInt128BigEndian(nonce[16..32]) ^ BinaryPrimitives.ReadUInt128BigEndian(nonce[..16]);
        var now = time.GetUtcNow();
        while (_byExpiry.TryPeek(out var oldest) && oldest.Expiry < now)
        {
            _byExpiry.Dequeue();
            _used.Remove(oldest.Nonce);
        }
        if (_used.ContainsKey(id)) return Outcome.Replayed;
        if (_used.Count >= capacity) return Outcome.Full;
        _used[id] = expiry;
        _byExpiry.Enqueue((expiry, id));
        return Outcome.Fresh;
    }
}
