using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Relay;

public enum RelayFrameType : byte
{
    /// <summary>Client → relay: "I am this node key", answered with a challenge bound to the client's address.</summary>
    Hello = 1,
    Challenge = 2,
    /// <summary>Client → relay: the challenge's cookie, MACed with a key only the node and the relay can derive.</summary>
    Auth = 3,
    Ready = 4,
    Refused = 5,
    /// <summary>Client → relay: forward this payload to the node with this key.</summary>
    Send = 6,
    /// <summary>Relay → client: a payload forwarded from the node with this key.</summary>
    Receive = 7,
}

public enum RelayRefusal : byte
{
    NotRegistered = 1,
    NotAuthenticated = 2,
}

/// <summary>
/// Frames between agents and a bounce node: "MSHR", version, type, then the body. The relay never sees
/// inside a payload: WireGuard packets stay encrypted end to end, and probes stay MACed by the two nodes.
/// </summary>
public static class RelayFrame
{
    public const int HeaderSize = 6;
    public const int KeySize = 32;
    public const int CookieSize = 16;
    public const int MacSize = 16;
    public const int HelloSize = HeaderSize + KeySize;
    public const int ChallengeSize = HeaderSize + CookieSize;
    public const int AuthSize = HeaderSize + KeySize + CookieSize + MacSize;
    public const int ReadySize = HeaderSize;
    public const int RefusedSize = HeaderSize + 1;
    public const int ForwardOverhead = HeaderSize + KeySize;
    private const byte Version = 1;
    private static ReadOnlySpan<byte> Magic => "MSHR"u8;

    /// <summary>Shares the probes' first bytes ("MSH"), which neither WireGuard nor STUN can start with.</summary>
    public static bool LooksLikeRelay(ReadOnlySpan<byte> datagram) => datagram.Length >= HeaderSize && datagram[..4].SequenceEqual(Magic) && datagram[4] == Version;

    public static RelayFrameType TypeOf(ReadOnlySpan<byte> frame) => (RelayFrameType)frame[5];

    /// <summary>True when the frame's length fits its type; payload-carrying frames need a key and at least one byte.</summary>
    public static bool HasValidLength(ReadOnlySpan<byte> frame) => TypeOf(frame) switch
    {
        RelayFrameType.Hello => frame.Length == HelloSize,
        RelayFrameType.Challenge => frame.Length == ChallengeSize,
        RelayFrameType.Auth => frame.Length == AuthSize,
        RelayFrameType.Ready => frame.Length == ReadySize,
        RelayFrameType.Refused => frame.Length == RefusedSize,
        RelayFrameType.Send or RelayFrameType.Receive => frame.Length > ForwardOverhead,
        _ => false,
    };

    public static int WriteHeader(Span<byte> output, RelayFrameType type)
    {
        Magic.CopyTo(output);
        output[4] = Version;
        output[5] = (byte)type;
        return HeaderSize;
    }

    public static int WriteHello(Span<byte> output, PublicKey client)
    {
        WriteHeader(output, RelayFrameType.Hello);
        client.Span.CopyTo(output[HeaderSize..]);
        return HelloSize;
    }

    public static int WriteRefused(Span<byte> output, RelayRefusal reason)
    {
        WriteHeader(output, RelayFrameType.Refused);
        output[HeaderSize] = (byte)reason;
        return RefusedSize;
    }

    /// <summary>A Send or Receive frame: the other node's key, then the payload.</summary>
    public static int WriteForward(Span<byte> output, RelayFrameType type, ReadOnlySpan<byte> nodeKey, ReadOnlySpan<byte> payload)
    {
        WriteHeader(output, type);
        nodeKey.CopyTo(output[HeaderSize..]);
        payload.CopyTo(output[ForwardOverhead..]);
        return ForwardOverhead + payload.Length;
    }

    public static ReadOnlySpan<byte> NodeKey(ReadOnlySpan<byte> frame) => frame.Slice(HeaderSize, KeySize);

    public static ReadOnlySpan<byte> Payload(ReadOnlySpan<byte> frame) => frame[ForwardOverhead..];

    public static ReadOnlySpan<byte> Cookie(ReadOnlySpan<byte> frame) =>
        TypeOf(frame) == RelayFrameType.Challenge ? frame.Slice(HeaderSize, CookieSize) : frame.Slice(HeaderSize + KeySize, CookieSize);

    public static RelayRefusal Refusal(ReadOnlySpan<byte> frame) => (RelayRefusal)frame[HeaderSize];
}
