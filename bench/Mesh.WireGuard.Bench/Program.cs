using System.Diagnostics;
using System.Globalization;
using System.Net;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;
using Mesh.WireGuard.Routing;

// In-process figures for the WireGuard data path and handshake, each next to the raw primitive it is built
// on, measured in this run: per core, no I/O; and the responder's handshakes on one thread against all cores.
// "aead SECONDS" prints only the data path's seal and open rates (Gbit/s, one thread), for scripts/bench-wireguard.
var aeadOnly = args.Length > 0 && args[0] == "aead";
var seconds = args.Length > (aeadOnly ? 1 : 0) ? double.Parse(args[aeadOnly ? 1 : 0], CultureInfo.InvariantCulture) : 2;
const int PacketSize = 1420;

var key = new byte[32];
Random.Shared.NextBytes(key);
var plaintext = new byte[PacketSize];
var sealedPacket = new byte[PacketSize + 16];
if (aeadOnly)
{
    using var aead = new TransportAead(key);
    var sealRate = Measure(() => aead.Seal(1, plaintext, sealedPacket)) * PacketSize * 8 / 1e9;
    aead.Seal(1, plaintext, sealedPacket);
    var openBack = new byte[PacketSize];
    var openRate = Measure(() => aead.Open(1, sealedPacket, openBack)) * PacketSize * 8 / 1e9;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{sealRate:F2} {openRate:F2} {TransportCipher.Description}"));
    return 0;
}

Console.WriteLine($"WireGuard microbenchmarks: {PacketSize}-byte packets, one thread, {seconds} s per figure");
var back = new byte[PacketSize];
using (var raw = new System.Security.Cryptography.ChaCha20Poly1305(key))
{
    var nonce = new byte[12];
    var tag = new byte[16];
    Report("raw ChaCha20-Poly1305 seal (.NET/OpenSSL)", Measure(() => raw.Encrypt(nonce, plaintext, sealedPacket.AsSpan(0, PacketSize), tag)), PacketSize);
    raw.Encrypt(nonce, plaintext, sealedPacket.AsSpan(0, PacketSize), tag);
    Report("raw ChaCha20-Poly1305 open (.NET/OpenSSL)", Measure(() => raw.Decrypt(nonce, sealedPacket.AsSpan(0, PacketSize), tag, back)), PacketSize);
    tag[0] ^= 1;
    Report("raw ChaCha20-Poly1305 forged open refused (.NET/OpenSSL)", Measure(() =>
    {
        try
        {
            raw.Decrypt(nonce, sealedPacket.AsSpan(0, PacketSize), tag, back);
        }
        catch (System.Security.Cryptography.AuthenticationTagMismatchException)
        {
        }
    }), 0);
}
using (var nsecKey = NSec.Cryptography.Key.Import(NSec.Cryptography.AeadAlgorithm.ChaCha20Poly1305, key, NSec.Cryptography.KeyBlobFormat.RawSymmetricKey))
{
    var nonce = new byte[12];
    var algorithm = NSec.Cryptography.AeadAlgorithm.ChaCha20Poly1305;
    Report("raw ChaCha20-Poly1305 seal (NSec key)", Measure(() => algorithm.Encrypt(nsecKey, nonce, default, plaintext, sealedPacket)), PacketSize);
    Report("raw ChaCha20-Poly1305 open (NSec key)", Measure(() => algorithm.Decrypt(nsecKey, nonce, default, sealedPacket, back)), PacketSize);
}
{
    var nonce = new byte[12];
    if (OpenSslAead.Available)
    {
        Report("raw ChaCha20-Poly1305 seal (libcrypto EVP, direct)", Measure(() => OpenSslAead.Seal(key, nonce, plaintext, sealedPacket)), PacketSize);
        OpenSslAead.Seal(key, nonce, plaintext, sealedPacket);
        Report("raw ChaCha20-Poly1305 open (libcrypto EVP, direct)", Measure(() => OpenSslAead.Open(key, nonce, sealedPacket, back)), PacketSize);
        sealedPacket[^1] ^= 1;
        Report("raw ChaCha20-Poly1305 forged open refused (libcrypto EVP)", Measure(() => OpenSslAead.Open(key, nonce, sealedPacket, back)), 0);
    }
    Report("raw ChaCha20-Poly1305 seal (libsodium, direct)", Measure(() => Sodium.Seal(key, nonce, plaintext, sealedPacket)), PacketSize);
    Report("raw ChaCha20-Poly1305 open (libsodium, direct)", Measure(() => Sodium.crypto_aead_chacha20poly1305_ietf_decrypt_detached(ref back[0], 0, in sealedPacket[0], PacketSize,
        in sealedPacket[PacketSize], in nonce[0], 0, in nonce[0], in key[0])), PacketSize);
}
using (var transport = new TransportAead(key))
{
    Console.WriteLine($"  the data path's choice: {TransportCipher.Description}");
    Report("TransportAead seal (the choice)", Measure(() => transport.Seal(1, plaintext, sealedPacket)), PacketSize);
    transport.Seal(1, plaintext, sealedPacket);
    Report("TransportAead open (the choice)", Measure(() => transport.Open(1, sealedPacket, back)), PacketSize);
    sealedPacket[^1] ^= 1;
    Report("TransportAead forged open refused (the choice)", Measure(() => transport.Open(1, sealedPacket, back)), 0);
}

var net = new LoopbackPair();
var keypair = net.Established();
ulong counter = 0;
Report("keypair seal (encrypt)", Measure(() => keypair.Seal(counter++, plaintext, sealedPacket)), PacketSize);
var opened = new byte[PacketSize];
keypair.Seal(7, plaintext, sealedPacket);
var peerKeypair = net.PeerKeypair();
Report("keypair open (decrypt)", Measure(() => peerKeypair.Open(7, sealedPacket, opened)), PacketSize);

var packet = net.PacketToB(PacketSize);
Report("device send path (route, stage, counter, pad, seal)", Measure(() => net.A.SendPacket(packet)), PacketSize);
var datagrams = net.CaptureDatagramsToB(packet, 200_000);
var next = 0;
Report("device receive path (index, open, replay, route)", Measure(() => net.B.ReceiveDatagram(datagrams[next++ % datagrams.Count], net.EndpointA)), PacketSize);
var forged = datagrams.Select(d =>
{
    var copy = (byte[])d.Clone();
    copy[^1] ^= 1;
    return copy;
}).ToList();
var dropsBefore = net.B.Stats.TotalDropped;
Report("device forged transport packets dropped", Measure(() => net.B.ReceiveDatagram(forged[next++ % forged.Count], net.EndpointA)), 0);
Console.WriteLine($"{"  (counted as drops)",-62} {net.B.Stats.TotalDropped - dropsBefore,12:N0}");

var seed = new byte[32];
var shared = new byte[32];
var otherPrivate = new byte[32];
var otherPublic = new byte[32];
X25519.GeneratePrivateKey(seed, SystemEntropy.Instance);
X25519.GenerateEphemeral(otherPrivate, otherPublic, SystemEntropy.Instance);
using var ours = X25519.Import(seed, exportable: false);
var otherNsec = X25519.ImportPublicKey(otherPublic);
Report("raw X25519 shared secret, static key (NSec key, as used)", Measure(() => X25519.SharedSecret(shared, ours, otherNsec)), 0);
Report("raw X25519 shared secret, ephemeral (libsodium, as used)", Measure(() => X25519.EphemeralSharedSecret(shared, seed, otherPublic)), 0);
Report("raw X25519 shared secret (BouncyCastle 2.7.0)", Measure(() => Org.BouncyCastle.Math.EC.Rfc7748.X25519.ScalarMult(seed, 0, otherPublic, 0, shared, 0)), 0);
Report("raw X25519 ephemeral key generation (libsodium, as used)", Measure(() => X25519.GenerateEphemeral(otherPrivate, otherPublic, SystemEntropy.Instance)), 0);
Report("raw X25519 key generation as an NSec key import", Measure(() => X25519.Import(seed, exportable: false).Dispose()), 0);
var message = new byte[148];
var digest = new byte[32];
Report("BLAKE2s-256 of 148 bytes (BouncyCastle 2.7.0, as used)", Measure(() => Blake2s.Hash(digest, message)), 0);
Report("complete handshakes (initiation, response, keys, both sides)", Measure(() => net.Handshake()), 0);

// The responder's side across cores: initiations from many peers, each handled once (a response goes out).
var cores = Environment.ProcessorCount;
var farm = new InitiationFarm(peers: Math.Max(2000, (int)(4000 * seconds)));
var oneThread = farm.Respond(threads: 1);
var allThreads = farm.Respond(threads: cores);
Report("responder handshakes (initiation in, response out), 1 thread", oneThread, 0);
Report($"responder handshakes, {cores} threads (distinct peers)", allThreads, 0);
Console.WriteLine($"{"  ratio all cores / one thread",-62} {allThreads / oneThread,12:F2}");
// The machine's own scaling, for reference: the raw ephemeral DH on one thread against all cores.
var rawOne = MeasureOnThreads(1, () => X25519.EphemeralSharedSecret(new byte[32], seed, otherPublic));
var rawAll = MeasureOnThreads(cores, () => X25519.EphemeralSharedSecret(new byte[32], seed, otherPublic));
Console.WriteLine($"{"  raw X25519 (libsodium) on all cores / one thread",-62} {rawAll / rawOne,12:F2}");

// Forged handshake messages, per core: without mac1 (anyone can send these) and with a valid mac1 but a
// payload that does not decrypt (anyone who knows the public key), the second under load, so answered by cookies.
var forgedInitiation = farm.ForgedInitiation(validMac1: false);
Report("forged initiations dropped (bad mac1), 1 thread", Measure(() => farm.Responder.ReceiveDatagram(forgedInitiation, net.EndpointA)), 0);
var loaded = farm.ForgedInitiation(validMac1: true);
var cookiesBefore = farm.LoadedResponder.Stats.CookieRepliesSent;
Report("forged initiations with mac1, under load: cookie replies, 1 thread", Measure(() => farm.LoadedResponder.ReceiveDatagram(loaded, net.EndpointA)), 0);
Console.WriteLine($"{"  (cookie replies sent)",-62} {farm.LoadedResponder.Stats.CookieRepliesSent - cookiesBefore,12:N0}");
return 0;

double Measure(Action action)
{
    var warmup = Stopwatch.StartNew();
    while (warmup.Elapsed.TotalSeconds < Math.Min(0.5, seconds / 2)) action();
    var count = 0L;
    var watch = Stopwatch.StartNew();
    while (watch.Elapsed.TotalSeconds < seconds)
    {
        for (var i = 0; i < 64; i++) action();
        count += 64;
    }
    return count / watch.Elapsed.TotalSeconds;
}

double MeasureOnThreads(int threads, Action action)
{
    var until = Stopwatch.GetTimestamp() + (long)(Math.Max(0.5, seconds / 2) * Stopwatch.Frequency);
    var counts = new long[threads];
    var watch = Stopwatch.StartNew();
    Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, thread =>
    {
        while (Stopwatch.GetTimestamp() < until)
        {
            for (var i = 0; i < 16; i++) action();
            counts[thread] += 16;
        }
    });
    return counts.Sum() / watch.Elapsed.TotalSeconds;
}

void Report(string what, double perSecond, int bytes)
{
    var rate = bytes > 0 ? $"{perSecond * bytes * 8 / 1e9,6:F2} Gbit/s" : "";
    Console.WriteLine($"{what,-62} {perSecond,12:N0} /s  {rate}");
}

/// <summary>Two devices whose output goes nowhere except where a figure asks for it.</summary>
sealed class LoopbackPair
{
    private readonly Sink _sinkA = new(), _sinkB = new();
    private readonly PrivateKey _keyA = PrivateKey.Generate(), _keyB = PrivateKey.Generate();
    private readonly ManualClock _clock = new();

    public LoopbackPair()
    {
        A = new Device(_sinkA, _clock);
        B = new Device(_sinkB, _clock);
        A.SetPrivateKey(_keyA);
        B.SetPrivateKey(_keyB);
        var peerB = A.GetOrAddPeer(_keyB.PublicKey);
        peerB.Endpoint = EndpointB;
        A.SetAllowedIps(peerB, [IpPrefix.Parse("10.0.0.2/32")], true);
        var peerA = B.GetOrAddPeer(_keyA.PublicKey);
        peerA.Endpoint = EndpointA;
        B.SetAllowedIps(peerA, [IpPrefix.Parse("10.0.0.1/32")], true);
    }

    public Device A { get; }
    public Device B { get; }
    public NetEndpoint EndpointA { get; } = NetEndpoint.Parse("192.0.2.1:1");
    public NetEndpoint EndpointB { get; } = NetEndpoint.Parse("192.0.2.2:2");

    public Keypair Established()
    {
        Handshake();
        return A.FindPeer(_keyB.PublicKey)!.Current!;
    }

    public Keypair PeerKeypair() => B.FindPeer(_keyA.PublicKey)!.Current!;

    /// <summary>A's initiation to B, B's response, A's first packet: a whole handshake done by both ends.</summary>
    public void Handshake()
    {
        // Past RekeyTimeout and RejectAfterTime: the session is gone and a new initiation may go out.
        _clock.Advance(ProtocolConstants.RejectAfterTime);
        _sinkA.Capture = _sinkB.Capture = true;
        A.SendPacket(PacketToB(60));
        Deliver(_sinkA, B, EndpointA);
        Deliver(_sinkB, A, EndpointB);
        Deliver(_sinkA, B, EndpointA);
        _sinkA.Capture = _sinkB.Capture = false;
    }

    public byte[] PacketToB(int size)
    {
        var packet = new byte[size];
        packet[0] = 0x45;
        packet[2] = (byte)(size >> 8);
        packet[3] = (byte)size;
        IPAddress.Parse("10.0.0.1").GetAddressBytes().CopyTo(packet, 12);
        IPAddress.Parse("10.0.0.2").GetAddressBytes().CopyTo(packet, 16);
        return packet;
    }

    public List<byte[]> CaptureDatagramsToB(byte[] packet, int count)
    {
        _sinkA.Capture = true;
        for (var i = 0; i < count; i++) A.SendPacket(packet);
        _sinkA.Capture = false;
        var result = new List<byte[]>(_sinkA.Captured);
        _sinkA.Captured.Clear();
        return result;
    }

    private static void Deliver(Sink from, Device to, NetEndpoint source)
    {
        foreach (var datagram in from.Captured) to.ReceiveDatagram(datagram, source);
        from.Captured.Clear();
    }

    private sealed class Sink : IPacketSink
    {
        public bool Capture;
        public List<byte[]> Captured { get; } = new();

        public void SendDatagram(ReadOnlySpan<byte> datagram, NetEndpoint destination)
        {
            if (Capture) Captured.Add(datagram.ToArray());
        }

        public void WriteTunnel(ReadOnlySpan<byte> packet) { }
    }
}

/// <summary>
/// One responder with many peers and one captured initiation from each: every initiation can be handled once
/// (timestamps only go forward), so each run takes fresh ones.
/// </summary>
sealed class InitiationFarm
{
    private readonly List<byte[]> _initiations = new();
    private readonly PrivateKey _responderKey = PrivateKey.Generate();
    private int _next;

    public InitiationFarm(int peers)
    {
        var clock = new ManualClock();
        var nowhere = new NullSink();
        Responder = new Device(nowhere, clock, options: new DeviceOptions { UnderLoadHandshakesPerSecond = int.MaxValue });
        Responder.SetPrivateKey(_responderKey);
        LoadedResponder = new Device(nowhere, clock, options: new DeviceOptions { UnderLoadHandshakesPerSecond = 0 });
        LoadedResponder.SetPrivateKey(_responderKey);
        var capture = new CaptureSink();
        Parallel.For(0, peers, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, _ =>
        {
            var key = PrivateKey.Generate();
            var initiator = new Device(capture, clock);
            initiator.SetPrivateKey(key);
            var peer = initiator.GetOrAddPeer(_responderKey.PublicKey);
            peer.Endpoint = NetEndpoint.Parse("192.0.2.9:9");
            initiator.SetAllowedIps(peer, [IpPrefix.Parse("10.0.0.0/8")], true);
            lock (Responder) Responder.GetOrAddPeer(key.PublicKey);
            var packet = new byte[60];
            packet[0] = 0x45;
            packet[3] = 60;
            packet[16] = 10;
            initiator.SendPacket(packet);
        });
        _initiations.AddRange(capture.Datagrams);
    }

    public Device Responder { get; }
    public Device LoadedResponder { get; }

    /// <summary>Handles the next half of the initiations on this many threads; handshakes per second.</summary>
    public double Respond(int threads)
    {
        var count = _initiations.Count / 2;
        var start = _next;
        _next += count;
        var before = Responder.Stats.HandshakesCompleted;
        var watch = Stopwatch.StartNew();
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, thread =>
        {
            for (var i = start + thread; i < start + count; i += threads) Responder.ReceiveDatagram(_initiations[i], NetEndpoint.Parse("192.0.2.7:7"));
        });
        var elapsed = watch.Elapsed.TotalSeconds;
        var done = Responder.Stats.HandshakesCompleted - before;
        if (done != count) throw new InvalidOperationException($"{done} of {count} initiations became handshakes");
        return done / elapsed;
    }

    /// <summary>An initiation-sized message of random bytes, with mac1 computed for the responder or not.</summary>
    public byte[] ForgedInitiation(bool validMac1)
    {
        var message = new byte[148];
        Random.Shared.NextBytes(message);
        message[0] = 1;
        message[1] = message[2] = message[3] = 0;
        if (validMac1) new Mesh.WireGuard.Cookies.CookieGenerator(_responderKey.PublicKey).AddMacs(message, TimeSpan.Zero);
        return message;
    }

    private sealed class NullSink : IPacketSink
    {
        public void SendDatagram(ReadOnlySpan<byte> datagram, NetEndpoint destination) { }
        public void WriteTunnel(ReadOnlySpan<byte> packet) { }
    }

    private sealed class CaptureSink : IPacketSink
    {
        public List<byte[]> Datagrams { get; } = new();

        public void SendDatagram(ReadOnlySpan<byte> datagram, NetEndpoint destination)
        {
            lock (Datagrams) Datagrams.Add(datagram.ToArray());
        }

        public void WriteTunnel(ReadOnlySpan<byte> packet) { }
    }
}
