using System.Buffers.Binary;
using Mesh.WireGuard.Core;

namespace Mesh.Traversal.Stun;

public enum StunParseResult
{
    Ok,
    NotStun,
    Malformed,
    BadFingerprint,
    /// <summary>Well-formed, but carries a comprehension-required attribute we do not know (answer 420).</summary>
    UnknownAttributes,
}

/// <summary>
/// STUN (RFC 8489) for NAT discovery: Binding requests and success responses with XOR-MAPPED-ADDRESS,
/// FINGERPRINT, and the 420 error for unknown comprehension-required attributes. No I/O.
/// </summary>
public static class StunMessage
{
    public const int HeaderSize = 20;
    public const uint MagicCookie = 0x2112A442;
    public const ushort BindingRequest = 0x0001;
    public const ushort BindingSuccess = 0x0101;
    public const ushort BindingError = 0x0111;
    public const ushort AttrMappedAddress = 0x0001;
    public const ushort AttrErrorCode = 0x0009;
    public const ushort AttrUnknownAttributes = 0x000A;
    public const ushort AttrXorMappedAddress = 0x0020;
    public const ushort AttrSoftware = 0x8022;
    public const ushort AttrFingerprint = 0x8028;
    private const uint FingerprintXor = 0x5354554e;
    public const int TransactionIdSize = 12;
    public const int MaxResponseSize = 128;

    /// <summary>A cheap check for demultiplexing: the STUN magic cookie where it belongs and zero top bits.</summary>
    public static bool LooksLikeStun(ReadOnlySpan<byte> packet) =>
        packet.Length >= HeaderSize && (packet[0] & 0xC0) == 0 && BinaryPrimitives.ReadUInt32BigEndian(packet[4..]) == MagicCookie;

    public static ushort TypeOf(ReadOnlySpan<byte> packet) => BinaryPrimitives.ReadUInt16BigEndian(packet);

    public static ReadOnlySpan<byte> TransactionId(ReadOnlySpan<byte> packet) => packet.Slice(8, TransactionIdSize);

    /// <summary>Checks the whole message: header, lengths, attribute framing, FINGERPRINT placement and value.</summary>
    public static StunParseResult Validate(ReadOnlySpan<byte> packet, Span<ushort> unknownAttributes, out int unknownCount)
    {
        unknownCount = 0;
        if (!LooksLikeStun(packet)) return StunParseResult.NotStun;
        int length = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
        if (length % 4 != 0 || HeaderSize + length != packet.Length) return StunParseResult.Malformed;
        var offset = HeaderSize;
        while (offset < packet.Length)
        {
            if (offset + 4 > packet.Length) return StunParseResult.Malformed;
            var type = BinaryPrimitives.ReadUInt16BigEndian(packet[offset..]);
            int valueLength = BinaryPrimitives.ReadUInt16BigEndian(packet[(offset + 2)..]);
            var next = offset + 4 + ((valueLength + 3) & ~3);
            if (next > packet.Length) return StunParseResult.Malformed;
            if (type == AttrFingerprint)
            {
                if (valueLength != 4 || next != packet.Length) return StunParseResult.Malformed;
                var expected = Crc32.Compute(packet[..offset]) ^ FingerprintXor;
                if (BinaryPrimitives.ReadUInt32BigEndian(packet[(offset + 4)..]) != expected) return StunParseResult.BadFingerprint;
            }
            else if (type < 0x8000 && !IsKnown(type) && unknownCount < unknownAttributes.Length)
            {
                unknownAttributes[unknownCount++] = type;
            }
            offset = next;
        }
        return unknownCount > 0 ? StunParseResult.UnknownAttributes : StunParseResult.Ok;
    }

    /// <summary>A STUN server's response to one datagram from <paramref name="source"/>, or 0 to drop it.</summary>
    public static int Answer(ReadOnlySpan<byte> packet, NetEndpoint source, Span<byte> response, Span<ushort> unknown)
    {
        var result = Validate(packet, unknown, out var unknownCount);
        if (result is not (StunParseResult.Ok or StunParseResult.UnknownAttributes) || TypeOf(packet) != BindingRequest) return 0;
        var transaction = TransactionId(packet);
        return result == StunParseResult.UnknownAttributes
            ? WriteUnknownAttributesError(response, transaction, unknown[..unknownCount])
            : WriteBindingSuccess(response, transaction, source);
    }

    public static int WriteBindingRequest(Span<byte> output, ReadOnlySpan<byte> transactionId)
    {
        WriteHeader(output, BindingRequest, transactionId);
        return Finish(output, HeaderSize);
    }

    /// <summary>A success response naming the address the request came from.</summary>
    public static int WriteBindingSuccess(Span<byte> output, ReadOnlySpan<byte> transactionId, NetEndpoint mapped)
    {
        WriteHeader(output, BindingSuccess, transactionId);
        var offset = HeaderSize;
        var ipv4 = mapped.IsIPv4;
        var addressLength = ipv4 ? 4 : 16;
        BinaryPrimitives.WriteUInt16BigEndian(output[offset..], AttrXorMappedAddress);
        BinaryPrimitives.WriteUInt16BigEndian(output[(offset + 2)..], (ushort)(4 + addressLength));
        output[offset + 4] = 0;
        output[offset + 5] = ipv4 ? (byte)1 : (byte)2;
        BinaryPrimitives.WriteUInt16BigEndian(output[(offset + 6)..], (ushort)(mapped.Port ^ (MagicCookie >> 16)));
        Span<byte> address = stackalloc byte[16];
        mapped.WriteMappedAddress(address);
        var raw = ipv4 ? address[12..] : address;
        Span<byte> mask = stackalloc byte[16];
        BinaryPrimitives.WriteUInt32BigEndian(mask, MagicCookie);
        transactionId.CopyTo(mask[4..]);
        for (var i = 0; i < addressLength; i++) output[offset + 8 + i] = (byte)(raw[i] ^ mask[i]);
        offset += 8 + addressLength;
        return Finish(output, offset);
    }

    /// <summary>420 Unknown Attribute, listing the attributes we do not understand.</summary>
    public static int WriteUnknownAttributesError(Span<byte> output, ReadOnlySpan<byte> transactionId, ReadOnlySpan<ushort> unknown)
    {
        WriteHeader(output, BindingError, transactionId);
        ReadOnlySpan<byte> reason = "Unknown Attribute"u8;
        Span<byte> errorCode = stackalloc byte[4 + reason.Length];
        errorCode[2] = 4;
        errorCode[3] = 20;
        reason.CopyTo(errorCode[4..]);
        var offset = WriteAttribute(output, HeaderSize, AttrErrorCode, errorCode);

        var count = Math.Min(unknown.Length, 8);
        Span<byte> types = stackalloc byte[count * 2];
        for (var i = 0; i < count; i++) BinaryPrimitives.WriteUInt16BigEndian(types[(i * 2)..], unknown[i]);
        offset = WriteAttribute(output, offset, AttrUnknownAttributes, types);
        return Finish(output, offset);
    }

    private static int WriteAttribute(Span<byte> output, int offset, ushort type, ReadOnlySpan<byte> value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(output[offset..], type);
        BinaryPrimitives.WriteUInt16BigEndian(output[(offset + 2)..], (ushort)value.Length);
        value.CopyTo(output[(offset + 4)..]);
        var padded = (value.Length + 3) & ~3;
        output.Slice(offset + 4 + value.Length, padded - value.Length).Clear();
        return offset + 4 + padded;
    }

    /// <summary>The mapped address in a success response (XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS); false when there is none.</summary>
    public static bool TryReadMappedAddress(ReadOnlySpan<byte> packet, out NetEndpoint mapped)
    {
        mapped = default;
        var offset = HeaderSize;
        var found = false;
        while (offset + 4 <= packet.Length)
        {
            var type = BinaryPrimitives.ReadUInt16BigEndian(packet[offset..]);
            int length = BinaryPrimitives.ReadUInt16BigEndian(packet[(offset + 2)..]);
            if (offset + 4 + length > packet.Length) return false;
            var value = packet.Slice(offset + 4, length);
            if (type == AttrXorMappedAddress && TryReadAddress(value, packet.Slice(4, 16), out mapped)) return true;
            if (type == AttrMappedAddress && !found) found = TryReadAddress(value, default, out mapped);
            offset += 4 + ((length + 3) & ~3);
        }
        return found;
    }

    private static bool TryReadAddress(ReadOnlySpan<byte> value, ReadOnlySpan<byte> xorMask, out NetEndpoint endpoint)
    {
        endpoint = default;
        if (value.Length < 8) return false;
        var family = value[1];
        var addressLength = family == 1 ? 4 : family == 2 ? 16 : 0;
        if (addressLength == 0 || value.Length < 4 + addressLength) return false;
        var port = BinaryPrimitives.ReadUInt16BigEndian(value[2..]);
        Span<byte> address = stackalloc byte[16];
        value.Slice(4, addressLength).CopyTo(address);
        if (!xorMask.IsEmpty)
        {
            port ^= (ushort)(MagicCookie >> 16);
            for (var i = 0; i < addressLength; i++) address[i] ^= xorMask[i];
        }
        endpoint = family == 1 ? NetEndpoint.FromIPv4Bytes(address[..4], port) : NetEndpoint.FromAddressBytes(address, port);
        return true;
    }

    private static bool IsKnown(ushort type) => type is AttrMappedAddress or AttrXorMappedAddress or AttrErrorCode or AttrUnknownAttributes;

    private static void WriteHeader(Span<byte> output, ushort type, ReadOnlySpan<byte> transactionId)
    {
        BinaryPrimitives.WriteUInt16BigEndian(output, type);
        BinaryPrimitives.WriteUInt32BigEndian(output[4..], MagicCookie);
        transactionId[..TransactionIdSize].CopyTo(output[8..]);
    }

    /// <summary>Sets the length, appends FINGERPRINT, returns the total size.</summary>
    private static int Finish(Span<byte> output, int offset)
    {
        BinaryPrimitives.WriteUInt16BigEndian(output[2..], (ushort)(offset + 8 - HeaderSize));
        BinaryPrimitives.WriteUInt16BigEndian(output[offset..], AttrFingerprint);
        BinaryPrimitives.WriteUInt16BigEndian(output[(offset + 2)..], 4);
        BinaryPrimitives.WriteUInt32BigEndian(output[(offset + 4)..], Crc32.Compute(output[..offset]) ^ FingerprintXor);
        return offset + 8;
    }
}
