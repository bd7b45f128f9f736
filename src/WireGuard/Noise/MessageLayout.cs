using System.Buffers.Binary;

namespace Mesh.WireGuard.Noise;

public enum MessageType : uint
{
    Initiation = 1,
    Response = 2,
    CookieReply = 3,
    Transport = 4,
}

/// <summary>Sizes and offsets of the four message types; every field is little-endian.</summary>
public static class MessageLayout
{
    public const int InitiationSize = 148;
    public const int ResponseSize = 92;
    public const int CookieReplySize = 64;
    public const int TransportHeaderSize = 16;
    public const int KeepaliveSize = TransportHeaderSize + Crypto.Aead.TagSize;
    public const int MacSize = 16;

    public const int InitiationSender = 4;
    public const int InitiationEphemeral = 8;
    public const int InitiationStatic = 40;
    public const int InitiationTimestamp = 88;

    public const int ResponseSender = 4;
    public const int ResponseReceiver = 8;
    public const int ResponseEphemeral = 12;
    public const int ResponseEmpty = 44;

    public const int CookieReceiver = 4;
    public const int CookieNonce = 8;
    public const int CookieEncrypted = 32;

    public const int TransportReceiver = 4;
    public const int TransportCounter = 8;

    /// <summary>The type of a datagram, or 0 when the first byte is not 1-4 or the reserved bytes are not zero.</summary>
    public static MessageType TypeOf(ReadOnlySpan<byte> datagram)
    {
        if (datagram.Length < 4) return 0;
        var type = BinaryPrimitives.ReadUInt32LittleEndian(datagram);
        return type is >= 1 and <= 4 ? (MessageType)type : 0;
    }

    /// <summary>mac1 covers everything before it; mac2 covers everything before it, mac1 included.</summary>
    public static int Mac1Offset(int messageLength) => messageLength - 2 * MacSize;

    public static int Mac2Offset(int messageLength) => messageLength - MacSize;

    public static uint ReadUInt32(ReadOnlySpan<byte> message, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(message[offset..]);

    public static void WriteHeader(Span<byte> message, MessageType type) => BinaryPrimitives.WriteUInt32LittleEndian(message, (uint)type);
}
