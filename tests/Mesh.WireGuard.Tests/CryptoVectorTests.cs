using System.Text;
using Mesh.WireGuard.Crypto;

namespace Mesh.WireGuard.Tests;

public sealed class CryptoVectorTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", ""));

    private static bool SharedSecret(byte[] output, byte[] privateKey, byte[] publicKey)
    {
        using var key = X25519.Import(privateKey, exportable: false);
        return X25519.SharedSecret(output, key, X25519.ImportPublicKey(publicKey));
    }

    private static byte[] PublicKey(byte[] privateKey)
    {
        using var key = X25519.Import(privateKey, exportable: false);
        var output = new byte[32];
        X25519.WritePublicKey(key, output);
        return output;
    }
    private static readonly byte[] Sunscreen = Encoding.ASCII.GetBytes(
        "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");

    [Fact]
    public void X25519Rfc7748ScalarMult()
    {
        var output = new byte[32];
        Assert.True(SharedSecret(output,
            Hex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
            Hex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")));
        Assert.Equal(Hex("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"), output);
    }

    [Fact]
    public void X25519Rfc7748DiffieHellman()
    {
        var alicePrivate = Hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        var bobPrivate = Hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        var alicePublic = PublicKey(alicePrivate);
        var bobPublic = PublicKey(bobPrivate);
        Assert.Equal(Hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"), alicePublic);
        Assert.Equal(Hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"), bobPublic);
        var shared1 = new byte[32];
        var shared2 = new byte[32];
        Assert.True(SharedSecret(shared1, alicePrivate, bobPublic));
        Assert.True(SharedSecret(shared2, bobPrivate, alicePublic));
        Assert.Equal(Hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"), shared1);
        Assert.Equal(shared1, shared2);
    }

    [Fact]
    public void X25519EphemeralPathMatchesTheRfc7748Vectors()
    {
        var alicePrivate = Hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        var bobPublic = Hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        var shared = new byte[32];
        Assert.True(X25519.EphemeralSharedSecret(shared, alicePrivate, bobPublic));
        Assert.Equal(Hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"), shared);
        Assert.False(X25519.EphemeralSharedSecret(shared, alicePrivate, new byte[32]));
        Assert.Equal(new byte[32], shared);

        var ephemeralPrivate = new byte[32];
        var ephemeralPublic = new byte[32];
        X25519.GenerateEphemeral(ephemeralPrivate, ephemeralPublic, new SeededEntropy(7));
        Assert.Equal(PublicKey(ephemeralPrivate), ephemeralPublic);
    }

    [Fact]
    public void X25519RefusesLowOrderPoints()
    {
        var privateKey = Hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        Assert.False(SharedSecret(new byte[32], privateKey, new byte[32]));
        Assert.False(SharedSecret(new byte[32], privateKey, Hex("0100000000000000000000000000000000000000000000000000000000000000")));
    }

    [Fact]
    public void Blake2sRfc7693()
    {
        var output = new byte[32];
        Blake2s.Hash(output, "abc"u8);
        Assert.Equal(Hex("508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982"), output);
        Blake2s.Hash(output, "a"u8, "bc"u8);
        Assert.Equal(Hex("508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982"), output);
    }

    [Fact]
    public void Blake2sKeyedMac()
    {
        var key = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var mac = new byte[16];
        Blake2s.Mac(mac, key, "hello mac"u8);
        Assert.Equal(Hex("e310a940510e7b95c7ecdc6d65339421"), mac);
    }

    [Fact]
    public void HmacBlake2sKdf()
    {
        // Reference values from Python's hmac and hashlib.blake2s.
        var key = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var input = "WireGuard HMAC test"u8;
        var hmac = new byte[32];
        Blake2s.Hmac(hmac, key, input);
        Assert.Equal(Hex("9826477d736cfb8534349d0b3ca804914a788554527ea0ca7f7f5a39a60b460f"), hmac);

        byte[] t1 = new byte[32], t2 = new byte[32], t3 = new byte[32];
        Kdf.Derive3(t1, t2, t3, key, input);
        Assert.Equal(Hex("757a4988bb8618ee8455bd3bf7b9f0d1ff0d6998f42217d8d64a40b5fada0b8d"), t1);
        Assert.Equal(Hex("6c295335234e69ec3378bde437178565eb9845c8efc1aedaf0271def79bb4fda"), t2);
        Assert.Equal(Hex("99f535a14620be96d7c1d88964a31f79bbbc553a2390cdbc0c4c92172ea8262f"), t3);
        byte[] u1 = new byte[32], u2 = new byte[32];
        Kdf.Derive2(u1, u2, key, input);
        Assert.Equal(t1, u1);
        Assert.Equal(t2, u2);
    }

    [Fact]
    public void WireGuardInitialChainingKeyAndHash()
    {
        var chainingKey = new byte[32];
        var hash = new byte[32];
        Blake2s.Hash(chainingKey, "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"u8);
        Blake2s.Hash(hash, chainingKey, "WireGuard v1 zx2c4 Jason@zx2c4.com"u8);
        Assert.Equal(Hex("60e26dae f327efc0 2ec335e2 a025d2d0 16eb4206 f87277f5 2d38d198 8b78cd36"), chainingKey);
        Assert.Equal(Hex("2211b361 081ac566 691243db 458ad532 2d9c6c66 2293e8b7 0ee19c65 ba079ef3"), hash);
        Assert.Equal(chainingKey, Noise.NoiseConstants.InitialChainingKey);
        Assert.Equal(hash, Noise.NoiseConstants.InitialHash);
    }

    [Fact]
    public void ChaCha20Poly1305Rfc8439()
    {
        var key = Hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        var aad = Hex("50515253c0c1c2c3c4c5c6c7");
        // RFC 8439 2.8.2 uses nonce 07000000 40414243 44454647: our counter form is 4 zero bytes then a 64-bit counter,
        // so check the cipher itself through .NET with the RFC nonce, and our counter framing separately.
        using var cipher = new System.Security.Cryptography.ChaCha20Poly1305(key);
        var ciphertext = new byte[Sunscreen.Length];
        var tag = new byte[16];
        cipher.Encrypt(Hex("070000004041424344454647"), Sunscreen, ciphertext, tag, aad);
        Assert.Equal(Hex("1ae10b594f09e26a7e902ecbd0600691"), tag);
        Assert.Equal(Hex("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"), ciphertext[..32]);

        var sealedBytes = new byte[Sunscreen.Length + 16];
        Aead.Seal(key, 0x4746454443424140, Sunscreen, aad, sealedBytes);
        var expectedNonce = Hex("000000004041424344454647");
        var reference = new byte[Sunscreen.Length];
        cipher.Encrypt(expectedNonce, Sunscreen, reference, tag, aad);
        Assert.Equal(reference, sealedBytes[..Sunscreen.Length]);
        Assert.Equal(tag, sealedBytes[Sunscreen.Length..]);

        var opened = new byte[Sunscreen.Length];
        Assert.True(Aead.Open(key, 0x4746454443424140, sealedBytes, aad, opened));
        Assert.Equal(Sunscreen, opened);
        sealedBytes[5] ^= 1;
        Assert.False(Aead.Open(key, 0x4746454443424140, sealedBytes, aad, opened));
    }

    [Fact]
    public void TransportAeadMatchesTheReferenceCipherWithWireGuardNonces()
    {
        var key = Hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        using var cipher = new System.Security.Cryptography.ChaCha20Poly1305(key);
        using var aead = new TransportAead(key);
        foreach (var length in new[] { 0, 16, Sunscreen.Length })
        {
            var plaintext = Sunscreen[..length];
            var sealedBytes = new byte[length + 16];
            Assert.True(aead.Seal(0x4746454443424140, plaintext, sealedBytes));
            var reference = new byte[length];
            var tag = new byte[16];
            cipher.Encrypt(Hex("000000004041424344454647"), plaintext, reference, tag);
            Assert.Equal(reference, sealedBytes[..length]);
            Assert.Equal(tag, sealedBytes[length..]);

            var opened = new byte[length];
            Assert.True(aead.Open(0x4746454443424140, sealedBytes, opened));
            Assert.Equal(plaintext, opened);
            Assert.False(aead.Open(0x4746454443424141, sealedBytes, opened));
            sealedBytes[^1] ^= 1;
            Assert.False(aead.Open(0x4746454443424140, sealedBytes, opened));
        }
    }

    /// <summary>
    /// The data path runs whichever of libcrypto and libsodium is faster on the machine (<see cref="TransportCipher"/>):
    /// both give the same bytes for every length, open each other's packets, and refuse a changed byte.
    /// </summary>
    [Fact]
    public void LibcryptoAndLibsodiumAgreeOnEveryLength()
    {
        Assert.True(OpenSslAead.Available, "libcrypto.so.3 (OpenSSL 3) is on every supported Linux");
        var random = new Random(11);
        var key = new byte[32];
        var nonce = new byte[12];
        for (var length = 0; length <= 1600; length += length < 80 ? 1 : 61)
        {
            random.NextBytes(key);
            random.NextBytes(nonce);
            var plaintext = new byte[length];
            random.NextBytes(plaintext);
            var bySodium = new byte[length + 16];
            Sodium.crypto_aead_chacha20poly1305_ietf_encrypt_detached(ref bySodium[0], ref bySodium[length], 0,
                in length == 0 ? ref nonce[0] : ref plaintext[0], (ulong)length, in nonce[0], 0, 0, in nonce[0], in key[0]);
            var byOpenSsl = new byte[length + 16];
            Assert.True(OpenSslAead.Seal(key, nonce, plaintext, byOpenSsl));
            Assert.Equal(bySodium, byOpenSsl);

            var opened = new byte[length];
            Assert.True(OpenSslAead.Open(key, nonce, bySodium, opened));
            Assert.Equal(plaintext, opened);
            byOpenSsl[random.Next(byOpenSsl.Length)] ^= 0x20;
            Assert.False(OpenSslAead.Open(key, nonce, byOpenSsl, opened));
            Assert.NotEqual(0, Sodium.crypto_aead_chacha20poly1305_ietf_decrypt_detached(ref length == 0 ? ref nonce[0] : ref opened[0], 0,
                in byOpenSsl[0], (ulong)length, in byOpenSsl[length], in nonce[0], 0, in nonce[0], in key[0]));
        }
        Assert.Contains(TransportCipher.OpenSsl ? "openssl" : "libsodium", TransportCipher.Description);
    }

    /// <summary>Each thread seals and opens on contexts of its own: many at once, each with its own key, never see another's.</summary>
    [Fact]
    public void TransportAeadIsSafeOnManyThreadsAtOnce()
    {
        var failures = 0;
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            var key = new byte[32];
            key[0] = (byte)(t + 1);
            using var aead = new TransportAead(key);
            var packet = new byte[1420 + 16];
            for (var i = 0; i < 20_000; i++)
            {
                packet[0] = (byte)i;
                packet[1419] = (byte)t;
                if (!aead.Seal((ulong)i, packet.AsSpan(0, 1420), packet) || !aead.Open((ulong)i, packet, packet) || packet[0] != (byte)i || packet[1419] != (byte)t)
                {
                    Interlocked.Increment(ref failures);
                }
            }
        })).ToList();
        threads.ForEach(thread => thread.Start());
        threads.ForEach(thread => thread.Join());
        Assert.Equal(0, failures);
    }

    [Fact]
    public void TransportAeadSealsInPlaceAndRefusesAfterDispose()
    {
        var key = new byte[32];
        var aead = new TransportAead(key);
        var buffer = new byte[64 + 16];
        Sunscreen.AsSpan(0, 64).CopyTo(buffer);
        Assert.True(aead.Seal(7, buffer.AsSpan(0, 64), buffer));
        Assert.True(aead.Open(7, buffer, buffer));
        Assert.Equal(Sunscreen[..64], buffer[..64]);
        aead.Dispose();
        Assert.False(aead.Seal(8, buffer.AsSpan(0, 64), buffer));
        Assert.False(aead.Open(7, buffer, buffer));
    }

    [Fact]
    public void XChaCha20Poly1305DraftVector()
    {
        var key = Hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        var nonce = Hex("404142434445464748494a4b4c4d4e4f5051525354555657");
        var aad = Hex("50515253c0c1c2c3c4c5c6c7");
        var output = new byte[Sunscreen.Length + 16];
        using var xkey = XAead.ImportKey(key);
        XAead.Seal(xkey, nonce, Sunscreen, aad, output);
        Assert.Equal(Hex(
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452" +
            "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e"), output[..Sunscreen.Length]);
        Assert.Equal(Hex("c0875924c1c7987947deafd8780acf49"), output[Sunscreen.Length..]);
        var opened = new byte[Sunscreen.Length];
        Assert.True(XAead.Open(xkey, nonce, output, aad, opened));
        Assert.Equal(Sunscreen, opened);
        output[0] ^= 0x80;
        Assert.False(XAead.Open(xkey, nonce, output, aad, opened));
    }

    [Fact]
    public void Tai64NIsMonotonicAndBigEndian()
    {
        var a = new byte[12];
        var b = new byte[12];
        Tai64N.Write(a, new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        Tai64N.Write(b, new DateTime(2026, 1, 1, 0, 0, 1, DateTimeKind.Utc));
        Assert.True(Tai64N.IsAfter(b, a));
        Assert.False(Tai64N.IsAfter(a, b));
        Assert.False(Tai64N.IsAfter(a, a));
        Assert.Equal(0x40, a[0]);
    }
}
