using System.Buffers.Binary;
using System.Security.Cryptography;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;
using Mesh.WireGuard.Replay;

namespace Mesh.Traversal.Probes;

public enum ProbeType : byte
{
    Ping = 1,
    Pong = 2,
}

public enum ProbeResult
{
    Ok,
    NotProbe,
    Malformed,
    UnknownSender,
    BadMac,
    Replayed,
}

/// <summary>A checked probe: who sent it, the transaction it belongs to, and (for a pong) where the ping was seen coming from.</summary>
public readonly record struct Probe(ProbeType Type, PublicKey Sender, UInt128 TransactionId, NetEndpoint Observed);

/// <summary>
/// Path probes: pings sent to every candidate of a peer and pongs that say where the ping came from.
/// Layout: "MSHP", version, type, sender node key (32), transaction id (16), counter (8), [pong: observed
/// address (16) and port (2)], then a 16-byte keyed BLAKE2s MAC. The MAC key is derived from X25519 of
/// the two nodes' static keys, so only the two of them can make or check a probe; the counter goes through
/// a replay window per peer, so a captured probe is refused when sent again. No I/O; not thread-safe.
/// </summary>
public sealed class ProbeCodec(PrivateKey local, IClock clock)
{
    public const int PingSize = HeaderSize + MacSize;
    public const int PongSize = HeaderSize + ObservedSize + MacSize;
    private const int HeaderSize = 4 + 1 + 1 + 32 + 16 + 8;
    private const int ObservedSize = 18;
    private const int MacSize = 16;
    private const byte Version = 1;
    private static ReadOnlySpan<byte> Magic => "MSHP"u8;
    private static ReadOnlySpan<byte> KeyLabel => "mesh probe v1"u8;

    private readonly Dictionary<PublicKey, PeerState> _peers = new();

    /// <summary>'M' has top bits 01: never STUN (00) nor WireGuard (first byte 1-4), so one socket can tell them apart.</summary>
    public static bool LooksLikeProbe(ReadOnlySpan<byte> datagram) => datagram.Length >= PingSize && datagram[..4].SequenceEqual(Magic);

    public int WritePing(Span<byte> output, PublicKey peer, UInt128 transactionId) =>
        Write(output, ProbeType.Ping, peer, transactionId, default);

    public int WritePong(Span<byte> output, PublicKey peer, UInt128 transactionId, NetEndpoint observed) =>
        Write(output, ProbeType.Pong, peer, transactionId, observed);

    /// <summary>Checks a probe from a peer that <paramref name="isPeer"/> accepts; everything else is refused with the reason.</summary>
    public ProbeResult TryRead(ReadOnlySpan<byte> datagram, Func<PublicKey, bool> isPeer, out Probe probe)
    {
        probe = default;
        if (!LooksLikeProbe(datagram)) return ProbeResult.NotProbe;
        var type = (ProbeType)datagram[5];
        var expected = type switch
        {
            ProbeType.Ping => PingSize,
            ProbeType.Pong => PongSize,
            _ => -1,
        };
        if (datagram[4] != Version || datagram.Length != expected) return ProbeResult.Malformed;
        var sender = new PublicKey(datagram.Slice(6, 32));
        if (sender.Equals(local.PublicKey) || !isPeer(sender)) return ProbeResult.UnknownSender;
        var state = State(sender);
        if (state is null) return ProbeResult.UnknownSender;

        var body = datagram[..^MacSize];
        Span<byte> mac = stackalloc byte[MacSize];
        Blake2s.Mac(mac, state.MacKey, body);
        if (!CryptographicOperations.FixedTimeEquals(mac, datagram[^MacSize..])) return ProbeResult.BadMac;
        var counter = BinaryPrimitives.ReadUInt64LittleEndian(datagram[54..]);
        if (!state.Replay.TryAccept(counter, ulong.MaxValue)) return ProbeResult.Replayed;

        var observed = default(NetEndpoint);
        if (type == ProbeType.Pong) observed = NetEndpoint.FromAddressBytes(datagram.Slice(HeaderSize, 16), BinaryPrimitives.ReadUInt16BigEndian(datagram[(HeaderSize + 16)..]));
        probe = new Probe(type, sender, BinaryPrimitives.ReadUInt128BigEndian(datagram[38..]), observed);
        return ProbeResult.Ok;
    }

    /// <summary>Forgets a peer's keys and counters (it was removed, or its key changed).</summary>
    public void Forget(PublicKey peer) => _peers.Remove(peer);

    private int Write(Span<byte> output, ProbeType type, PublicKey peer, UInt128 transactionId, NetEndpoint observed)
    {
        var state = State(peer) ?? throw new ArgumentException("The peer's key is a low-order point.", nameof(peer));
        var length = type == ProbeType.Ping ? PingSize : PongSize;
        var message = output[..length];
        Magic.CopyTo(message);
        message[4] = Version;
        message[5] = (byte)type;
        local.PublicKey.Span.CopyTo(message[6..]);
        BinaryPrimitives.WriteUInt128BigEndian(message[38..], transactionId);
        BinaryPrimitives.WriteUInt64LittleEndian(message[54..], state.NextCounter++);
        if (type == ProbeType.Pong)
        {
            observed.WriteMappedAddress(message.Slice(HeaderSize, 16));
            BinaryPrimitives.WriteUInt16BigEndian(message[(HeaderSize + 16)..], observed.Port);
        }
        Blake2s.Mac(message[^MacSize..], state.MacKey, message[..^MacSize]);
        return length;
    }

    private PeerState? State(PublicKey peer)
    {
        if (_peers.TryGetValue(peer, out var state)) return state;
        var key = PairKey.Derive(local, peer, KeyLabel);
        if (key is null) return null;
        // Counters start from the clock so a restarted node never reuses one its peer has already seen.
        state = new PeerState(key, (ulong)new DateTimeOffset(clock.UtcNow).ToUnixTimeMilliseconds() * 1000);
        _peers[peer] = state;
        return state;
    }

    private sealed class PeerState(byte[] macKey, ulong firstCounter)
    {
        public byte[] MacKey { get; } = macKey;
        public ulong NextCounter { get; set; } = firstCounter;
        public ReplayWindow Replay { get; } = new();
    }
}
