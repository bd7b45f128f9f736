using System.Diagnostics;

namespace Mesh.WireGuard.Crypto;

/// <summary>
/// Which ChaCha20-Poly1305 seals and opens transport packets: the faster one on the machine this runs on, chosen
/// once per process. On an EPYC with AVX-512 (OpenSSL 3.0.19) libcrypto sealed 8.48 and opened 8.43 Gbit/s on
/// one thread with 1420-byte packets, libsodium 6.22 and 6.13; on the machine libsodium was first chosen on it
/// measured faster. So both are measured at start (a few milliseconds, after libcrypto's output is checked
/// against libsodium's); MESH_TRANSPORT_AEAD=openssl or libsodium forces one (benchmarks compare them).
/// </summary>
public static class TransportCipher
{
    private const int PacketSize = 1420;
    private const int PacketsPerRound = 256;
    private const int Rounds = 4;

    /// <summary>True when libcrypto's EVP interface runs the data path, false for libsodium.</summary>
    public static readonly bool OpenSsl;

    /// <summary>How the choice was made, for `mesh-agent status` and the benchmarks.</summary>
    public static readonly string Description;

    static TransportCipher()
    {
        var forced = Environment.GetEnvironmentVariable("MESH_TRANSPORT_AEAD");
        var usable = OpenSslAead.Available && AgreesWithLibsodium();
        if (forced is "openssl" or "libsodium")
        {
            OpenSsl = forced == "openssl" && usable;
            Description = $"{(OpenSsl ? "openssl" : "libsodium")} (MESH_TRANSPORT_AEAD={forced}{(forced == "openssl" && !usable ? ", but libcrypto is not usable here" : "")})";
            return;
        }
        if (!usable)
        {
            Description = "libsodium (libcrypto's ChaCha20-Poly1305 is not usable here)";
            return;
        }
        var (openssl, sodium) = Measure();
        OpenSsl = openssl > sodium;
        Description = $"{(OpenSsl ? "openssl" : "libsodium")} (seals measured at start: openssl {openssl:0.00}, libsodium {sodium:0.00} Gbit/s)";
    }

    /// <summary>The same key, nonce and packet give libsodium's bytes, open again, and a changed tag is refused.</summary>
    private static bool AgreesWithLibsodium()
    {
        Span<byte> key = stackalloc byte[Aead.KeySize];
        Span<byte> nonce = stackalloc byte[Aead.NonceSize];
        var plaintext = new byte[PacketSize];
        for (var i = 0; i < key.Length; i++) key[i] = (byte)(i * 7 + 1);
        for (var i = 0; i < plaintext.Length; i++) plaintext[i] = (byte)(i * 13);
        Aead.WriteNonce(nonce, 0x0102030405060708);
        var expected = new byte[PacketSize + Aead.TagSize];
        var actual = new byte[PacketSize + Aead.TagSize];
        var opened = new byte[PacketSize];
        Sodium.EnsureInitialized();
        Sodium.Seal(key, nonce, plaintext, expected);
        if (!OpenSslAead.Seal(key, nonce, plaintext, actual) || !actual.AsSpan().SequenceEqual(expected)) return false;
        if (!OpenSslAead.Open(key, nonce, actual, opened) || !opened.AsSpan().SequenceEqual(plaintext)) return false;
        actual[^1] ^= 1;
        return !OpenSslAead.Open(key, nonce, actual, opened);
    }

    /// <summary>Seal rates in Gbit/s on 1420-byte packets, rounds of each taken in turn so neither gets the warmer machine.</summary>
    private static (double OpenSsl, double Sodium) Measure()
    {
        Span<byte> key = stackalloc byte[Aead.KeySize];
        Span<byte> nonce = stackalloc byte[Aead.NonceSize];
        var packet = new byte[PacketSize + Aead.TagSize];
        var openssl = TimeSpan.MaxValue;
        var sodium = TimeSpan.MaxValue;
        for (var round = 0; round < Rounds; round++)
        {
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < PacketsPerRound; i++) OpenSslAead.Seal(key, nonce, packet.AsSpan(0, PacketSize), packet);
            openssl = Min(openssl, clock.Elapsed);
            clock.Restart();
            for (var i = 0; i < PacketsPerRound; i++) Sodium.Seal(key, nonce, packet.AsSpan(0, PacketSize), packet);
            sodium = Min(sodium, clock.Elapsed);
        }
        return (Rate(openssl), Rate(sodium));
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    private static double Rate(TimeSpan elapsed) => PacketsPerRound * PacketSize * 8 / Math.Max(elapsed.TotalSeconds, 1e-9) / 1e9;
}
