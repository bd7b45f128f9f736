using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;
using Mesh.WireGuard.Noise;

namespace Mesh.WireGuard.Cookies;

/// <summary>The sending side of the DoS defence, one per peer: adds mac1 (and mac2 while a cookie is fresh) and takes cookie replies.</summary>
public sealed class CookieGenerator
{
    private readonly byte[] _mac1Key = new byte[Blake2s.HashSize];
    private readonly PublicKey _remote;
    private readonly byte[] _cookie = new byte[MessageLayout.MacSize];
    private readonly byte[] _lastMac1 = new byte[MessageLayout.MacSize];
    private TimeSpan? _cookieSet;
    private bool _hasLastMac1;

    public CookieGenerator(PublicKey remote)
    {
        _remote = remote;
        Blake2s.Hash(_mac1Key, NoiseConstants.LabelMac1, remote.Span);
    }

    public bool HasFreshCookie(TimeSpan now) => _cookieSet is { } set && now - set < CookieChecker.CookieRefreshTime;

    public void AddMacs(Span<byte> message, TimeSpan now)
    {
        var mac1Offset = MessageLayout.Mac1Offset(message.Length);
        var mac1 = message.Slice(mac1Offset, MessageLayout.MacSize);
        Blake2s.Mac(mac1, _mac1Key, message[..mac1Offset]);
        mac1.CopyTo(_lastMac1);
        _hasLastMac1 = true;

        var mac2Offset = MessageLayout.Mac2Offset(message.Length);
        var mac2 = message.Slice(mac2Offset, MessageLayout.MacSize);
        if (HasFreshCookie(now)) Blake2s.Mac(mac2, _cookie, message[..mac2Offset]);
        else mac2.Clear();
    }

    /// <summary>Takes the cookie from a reply to our latest handshake message; false if it does not decrypt.</summary>
    public bool ConsumeReply(ReadOnlySpan<byte> reply, TimeSpan now)
    {
        if (!_hasLastMac1 || reply.Length != MessageLayout.CookieReplySize) return false;
        Span<byte> cookie = stackalloc byte[MessageLayout.MacSize];
        var nonce = reply.Slice(MessageLayout.CookieNonce, XAead.NonceSize);
        // The key is made per reply (they are rare): an NSec key per peer would cost memory mappings for nothing.
        Span<byte> encryptionKey = stackalloc byte[Blake2s.HashSize];
        Blake2s.Hash(encryptionKey, NoiseConstants.LabelCookie, _remote.Span);
        bool opened;
        using (var key = XAead.ImportKey(encryptionKey))
        {
            opened = XAead.Open(key, nonce, reply.Slice(MessageLayout.CookieEncrypted, MessageLayout.MacSize + Aead.TagSize), _lastMac1, cookie);
        }
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(encryptionKey);
        if (!opened) return false;
        cookie.CopyTo(_cookie);
        _cookieSet = now;
        return true;
    }
}
