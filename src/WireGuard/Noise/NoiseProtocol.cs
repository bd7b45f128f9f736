using System.Buffers.Binary;
using System.Security.Cryptography;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;
using static Mesh.WireGuard.Noise.MessageLayout;

namespace Mesh.WireGuard.Noise;

/// <summary>Why an incoming handshake message was not accepted.</summary>
public enum HandshakeError
{
    None,
    Decryption,
    UnknownPeer,
    LowOrderKey,
    ReplayedTimestamp,
    InitiationFlood,
    WrongState,
}

/// <summary>
/// The four handshake steps of Noise_IKpsk2 as WireGuard uses it (whitepaper 5.4.2-5.4.5). Each step works
/// on copies and changes the peer's handshake only when the whole message checked out. macs are added and
/// checked by the cookie layer, not here.
/// </summary>
public static class NoiseProtocol
{
    /// <summary>Handshake initiations from one peer closer together than this are dropped (50 per second).</summary>
    public static readonly TimeSpan InitiationRate = TimeSpan.FromSeconds(1) / 50;

    public static bool CreateInitiation(LocalIdentity local, Handshake handshake, uint senderIndex, DateTime utcNow, IEntropy entropy, Span<byte> message)
    {
        if (!handshake.StaticStaticValid) return false;
        Span<byte> hash = stackalloc byte[32];
        Span<byte> chainingKey = stackalloc byte[32];
        Span<byte> key = stackalloc byte[32];
        Span<byte> shared = stackalloc byte[32];
        Span<byte> ephemeralPrivate = stackalloc byte[32];
        Span<byte> timestamp = stackalloc byte[Tai64N.Size];

        NoiseConstants.InitialChainingKey.CopyTo(chainingKey);
        Blake2s.Hash(hash, NoiseConstants.InitialHash, handshake.RemoteStatic.Span);

        message[..InitiationSize].Clear();
        WriteHeader(message, MessageType.Initiation);
        BinaryPrimitives.WriteUInt32LittleEndian(message[InitiationSender..], senderIndex);

        var ephemeral = message.Slice(InitiationEphemeral, 32);
        X25519.GenerateEphemeral(ephemeralPrivate, ephemeral, entropy);
        MixKey(chainingKey, ephemeral);
        MixHash(hash, ephemeral);

        if (!X25519.EphemeralSharedSecret(shared, ephemeralPrivate, handshake.RemoteStatic.Span)) return Fail(shared, ephemeralPrivate);
        Kdf.Derive2(chainingKey, key, chainingKey, shared);
        var encryptedStatic = message.Slice(InitiationStatic, 32 + Aead.TagSize);
        Aead.Seal(key, 0, local.PublicKey.Span, hash, encryptedStatic);
        MixHash(hash, encryptedStatic);

        Kdf.Derive2(chainingKey, key, chainingKey, handshake.StaticStatic);
        Tai64N.Write(timestamp, utcNow);
        var encryptedTimestamp = message.Slice(InitiationTimestamp, Tai64N.Size + Aead.TagSize);
        Aead.Seal(key, 0, timestamp, hash, encryptedTimestamp);
        MixHash(hash, encryptedTimestamp);

        hash.CopyTo(handshake.Hash);
        chainingKey.CopyTo(handshake.ChainingKey);
        ephemeralPrivate.CopyTo(handshake.LocalEphemeral);
        handshake.LocalIndex = senderIndex;
        handshake.State = HandshakeState.InitiationCreated;
        Zero(key, shared, ephemeralPrivate, chainingKey);
        return true;
    }

    /// <summary>
    /// Consuming an initiation, step 1, which touches no peer: the ephemeral Diffie-Hellman and the initiator's
    /// static key, decrypted into <paramref name="remoteStatic"/>. It holds the costly part of the responder's
    /// work and runs outside any lock, so initiations from different peers are checked on all cores at once.
    /// <paramref name="hash"/> and <paramref name="chainingKey"/> (32 bytes each) carry the state to step 2.
    /// </summary>
    public static HandshakeError OpenInitiation(LocalIdentity local, ReadOnlySpan<byte> message, Span<byte> hash, Span<byte> chainingKey, Span<byte> remoteStatic)
    {
        Span<byte> key = stackalloc byte[32];
        Span<byte> shared = stackalloc byte[32];
        NoiseConstants.InitialChainingKey.CopyTo(chainingKey);
        local.ResponderInitialHash.CopyTo(hash);
        var ephemeral = message.Slice(InitiationEphemeral, 32);
        MixKey(chainingKey, ephemeral);
        MixHash(hash, ephemeral);
        if (!local.PrivateKey.HandshakeSharedSecret(shared, ephemeral)) return HandshakeError.LowOrderKey;
        Kdf.Derive2(chainingKey, key, chainingKey, shared);
        var encryptedStatic = message.Slice(InitiationStatic, 32 + Aead.TagSize);
        var opened = Aead.Open(key, 0, encryptedStatic, hash, remoteStatic);
        Zero(key, shared);
        if (!opened) return HandshakeError.Decryption;
        MixHash(hash, encryptedStatic);
        return HandshakeError.None;
    }

    /// <summary>
    /// Consuming an initiation, step 2, under the lock of the peer whose static key step 1 found: the timestamp
    /// under the precomputed static-static secret, the replay and flood checks, and only then the peer's handshake
    /// changed. A private key changed between the steps makes the timestamp fail to decrypt.
    /// </summary>
    public static HandshakeError AcceptInitiation(Handshake handshake, ReadOnlySpan<byte> message, TimeSpan now, ReadOnlySpan<byte> openedHash, ReadOnlySpan<byte> openedChainingKey)
    {
        if (!handshake.StaticStaticValid) return HandshakeError.LowOrderKey;
        Span<byte> hash = stackalloc byte[32];
        Span<byte> chainingKey = stackalloc byte[32];
        Span<byte> key = stackalloc byte[32];
        Span<byte> timestamp = stackalloc byte[Tai64N.Size];
        openedHash.CopyTo(hash);
        openedChainingKey.CopyTo(chainingKey);
        Kdf.Derive2(chainingKey, key, chainingKey, handshake.StaticStatic);
        var encryptedTimestamp = message.Slice(InitiationTimestamp, Tai64N.Size + Aead.TagSize);
        var opened = Aead.Open(key, 0, encryptedTimestamp, hash, timestamp);
        CryptographicOperations.ZeroMemory(key);
        if (!opened) return Reject(HandshakeError.Decryption, hash, chainingKey);
        MixHash(hash, encryptedTimestamp);

        if (!Tai64N.IsAfter(timestamp, handshake.LatestTimestamp)) return Reject(HandshakeError.ReplayedTimestamp, hash, chainingKey);
        if (handshake.LastInitiationConsumed is { } last && now - last < InitiationRate) return Reject(HandshakeError.InitiationFlood, hash, chainingKey);

        hash.CopyTo(handshake.Hash);
        chainingKey.CopyTo(handshake.ChainingKey);
        message.Slice(InitiationEphemeral, 32).CopyTo(handshake.RemoteEphemeral);
        timestamp.CopyTo(handshake.LatestTimestamp);
        handshake.LastInitiationConsumed = now;
        handshake.RemoteIndex = ReadUInt32(message, InitiationSender);
        handshake.State = HandshakeState.InitiationConsumed;
        Zero(hash, chainingKey);
        return HandshakeError.None;
    }

    public static bool CreateResponse(Handshake handshake, uint senderIndex, IEntropy entropy, Span<byte> message)
    {
        if (handshake.State != HandshakeState.InitiationConsumed) return false;
        Span<byte> hash = stackalloc byte[32];
        Span<byte> chainingKey = stackalloc byte[32];
        Span<byte> key = stackalloc byte[32];
        Span<byte> tau = stackalloc byte[32];
        Span<byte> shared = stackalloc byte[32];
        Span<byte> ephemeralPrivate = stackalloc byte[32];
        handshake.Hash.CopyTo(hash);
        handshake.ChainingKey.CopyTo(chainingKey);

        message[..ResponseSize].Clear();
        WriteHeader(message, MessageType.Response);
        BinaryPrimitives.WriteUInt32LittleEndian(message[ResponseSender..], senderIndex);
        BinaryPrimitives.WriteUInt32LittleEndian(message[ResponseReceiver..], handshake.RemoteIndex);

        var ephemeral = message.Slice(ResponseEphemeral, 32);
        X25519.GenerateEphemeral(ephemeralPrivate, ephemeral, entropy);
        MixKey(chainingKey, ephemeral);
        MixHash(hash, ephemeral);

        if (!X25519.EphemeralSharedSecret(shared, ephemeralPrivate, handshake.RemoteEphemeral)) return Fail(shared, ephemeralPrivate);
        MixKey(chainingKey, shared);
        if (!X25519.EphemeralSharedSecret(shared, ephemeralPrivate, handshake.RemoteStatic.Span)) return Fail(shared, ephemeralPrivate);
        MixKey(chainingKey, shared);

        Kdf.Derive3(chainingKey, tau, key, chainingKey, handshake.PresharedKey);
        MixHash(hash, tau);
        var empty = message.Slice(ResponseEmpty, Aead.TagSize);
        Aead.Seal(key, 0, ReadOnlySpan<byte>.Empty, hash, empty);
        MixHash(hash, empty);

        hash.CopyTo(handshake.Hash);
        chainingKey.CopyTo(handshake.ChainingKey);
        handshake.LocalIndex = senderIndex;
        handshake.State = HandshakeState.ResponseCreated;
        Zero(key, tau, shared, chainingKey);
        CryptographicOperations.ZeroMemory(ephemeralPrivate);
        return true;
    }

    public static HandshakeError ConsumeResponse(LocalIdentity local, Handshake handshake, ReadOnlySpan<byte> message)
    {
        if (handshake.State != HandshakeState.InitiationCreated) return HandshakeError.WrongState;
        Span<byte> hash = stackalloc byte[32];
        Span<byte> chainingKey = stackalloc byte[32];
        Span<byte> key = stackalloc byte[32];
        Span<byte> tau = stackalloc byte[32];
        Span<byte> shared = stackalloc byte[32];
        handshake.Hash.CopyTo(hash);
        handshake.ChainingKey.CopyTo(chainingKey);

        var ephemeral = message.Slice(ResponseEphemeral, 32);
        MixKey(chainingKey, ephemeral);
        MixHash(hash, ephemeral);
        if (!X25519.EphemeralSharedSecret(shared, handshake.LocalEphemeral, ephemeral)) return HandshakeError.LowOrderKey;
        MixKey(chainingKey, shared);
        if (!local.PrivateKey.HandshakeSharedSecret(shared, ephemeral)) return HandshakeError.LowOrderKey;
        MixKey(chainingKey, shared);

        Kdf.Derive3(chainingKey, tau, key, chainingKey, handshake.PresharedKey);
        MixHash(hash, tau);
        var empty = message.Slice(ResponseEmpty, Aead.TagSize);
        if (!Aead.Open(key, 0, empty, hash, Span<byte>.Empty)) return HandshakeError.Decryption;
        MixHash(hash, empty);

        hash.CopyTo(handshake.Hash);
        chainingKey.CopyTo(handshake.ChainingKey);
        handshake.RemoteIndex = ReadUInt32(message, ResponseSender);
        handshake.State = HandshakeState.ResponseConsumed;
        Zero(key, tau, shared, chainingKey);
        return HandshakeError.None;
    }

    /// <summary>
    /// The transport keys of a completed handshake (initiator after the response, responder after sending it),
    /// and the handshake's secrets wiped. False when the handshake is not complete.
    /// </summary>
    public static bool DeriveTransportKeys(Handshake handshake, Span<byte> sendKey, Span<byte> receiveKey, out bool isInitiator)
    {
        isInitiator = handshake.State == HandshakeState.ResponseConsumed;
        if (!isInitiator && handshake.State != HandshakeState.ResponseCreated) return false;
        if (isInitiator) Kdf.Derive2(sendKey, receiveKey, handshake.ChainingKey, ReadOnlySpan<byte>.Empty);
        else Kdf.Derive2(receiveKey, sendKey, handshake.ChainingKey, ReadOnlySpan<byte>.Empty);
        CryptographicOperations.ZeroMemory(handshake.Hash);
        CryptographicOperations.ZeroMemory(handshake.ChainingKey);
        CryptographicOperations.ZeroMemory(handshake.LocalEphemeral);
        CryptographicOperations.ZeroMemory(handshake.RemoteEphemeral);
        handshake.State = HandshakeState.Zeroed;
        return true;
    }

    private static void MixHash(Span<byte> hash, ReadOnlySpan<byte> data) => Blake2s.Hash(hash, hash, data);

    private static void MixKey(Span<byte> chainingKey, ReadOnlySpan<byte> data) => Kdf.Derive1(chainingKey, chainingKey, data);

    private static HandshakeError Reject(HandshakeError error, Span<byte> a, Span<byte> b)
    {
        Zero(a, b);
        return error;
    }

    private static bool Fail(Span<byte> a, Span<byte> b)
    {
        Zero(a, b);
        return false;
    }

    private static void Zero(Span<byte> a, Span<byte> b, Span<byte> c = default, Span<byte> d = default)
    {
        CryptographicOperations.ZeroMemory(a);
        CryptographicOperations.ZeroMemory(b);
        CryptographicOperations.ZeroMemory(c);
        CryptographicOperations.ZeroMemory(d);
    }
}
