using System.Buffers.Binary;
using System.Security.Cryptography;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;
using Mesh.WireGuard.Noise;

namespace Mesh.WireGuard.Cookies;

/// <summary>
/// The receiving side of the DoS defence (whitepaper 5.4.7): checks mac1 against our public key always,
/// and under load checks mac2 against a cookie bound to the sender's address, answering with a cookie reply.
/// </summary>
public sealed class CookieChecker
{
    /// <summary>How long a cookie secret lives before a new one is drawn.</summary>
    public static readonly TimeSpan CookieRefreshTime = TimeSpan.FromSeconds(120);

    private readonly byte[] _mac1Key = new byte[Blake2s.HashSize];
    /// <summary>BLAKE2s("cookie--" || our public key): public knowledge, so the NSec key is left to its finalizer.</summary>
    private readonly NSec.Cryptography.Key _encryptionKey;
    private readonly byte[] _secret = new byte[32];
    private readonly IEntropy _entropy;
    private TimeSpan? _secretSet;

    public CookieChecker(PublicKey local, IEntropy entropy)
    {
        _entropy = entropy;
        Blake2s.Hash(_mac1Key, NoiseConstants.LabelMac1, local.Span);
        Span<byte> encryptionKey = stackalloc byte[Blake2s.HashSize];
        Blake2s.Hash(encryptionKey, NoiseConstants.LabelCookie, local.Span);
        _encryptionKey = XAead.ImportKey(encryptionKey);
        CryptographicOperations.ZeroMemory(encryptionKey);
    }


    public bool CheckMac1(ReadOnlySpan<byte> message)
    {
        var offset = MessageLayout.Mac1Offset(message.Length);
        Span<byte> mac = stackalloc byte[MessageLayout.MacSize];
        Blake2s.Mac(mac, _mac1Key, message[..offset]);
        return CryptographicOperations.FixedTimeEquals(mac, message.Slice(offset, MessageLayout.MacSize));
    }

    public bool CheckMac2(ReadOnlySpan<byte> message, NetEndpoint source, TimeSpan now)
    {
        if (_secretSet is not { } set || now - set > CookieRefreshTime) return false;
        Span<byte> cookie = stackalloc byte[MessageLayout.MacSize];
        MakeCookie(cookie, source);
        var offset = MessageLayout.Mac2Offset(message.Length);
        Span<byte> mac = stackalloc byte[MessageLayout.MacSize];
        Blake2s.Mac(mac, cookie, message[..offset]);
        return CryptographicOperations.FixedTimeEquals(mac, message.Slice(offset, MessageLayout.MacSize));
    }

    /// <summary>Writes the 64-byte cookie reply to a handshake message that came from <paramref name="source"/>.</summary>
    public void CreateReply(ReadOnlySpan<byte> message, NetEndpoint source, TimeSpan now, Span<byte> reply)
    {
        if (_secretSet is not { } set || now - set > CookieRefreshTime)
        {
            _entropy.Fill(_secret);
            _secretSet = now;
        }
        Span<byte> cookie = stackalloc byte[MessageLayout.MacSize];
        MakeCookie(cookie, source);

        reply[..MessageLayout.CookieReplySize].Clear();
        MessageLayout.WriteHeader(reply, MessageType.CookieReply);
        // The reply names the handshake message's sender index, which sits at offset 4 in both initiation and response.
        BinaryPrimitives.WriteUInt32LittleEndian(reply[MessageLayout.CookieReceiver..], MessageLayout.ReadUInt32(message, 4));
        var nonce = reply.Slice(MessageLayout.CookieNonce, XAead.NonceSize);
        _entropy.Fill(nonce);
        var mac1 = message.Slice(MessageLayout.Mac1Offset(message.Length), MessageLayout.MacSize);
        XAead.Seal(_encryptionKey, nonce, cookie, mac1, reply.Slice(MessageLayout.CookieEncrypted, MessageLayout.MacSize + Aead.TagSize));
    }

    private void MakeCookie(Span<byte> cookie, NetEndpoint source)
    {
        Span<byte> address = stackalloc byte[18];
        var length = source.WriteBytes(address);
        Blake2s.Mac(cookie, _secret, address[..length]);
    }
}
