using System.Buffers.Binary;
using Mesh.WireGuard.Core;

namespace Mesh.Traversal.PortMapping;

/// <summary>NAT-PMP (RFC 6886): the external address request, the UDP mapping request, and their responses.</summary>
public static class NatPmpMessage
{
    public const byte Version = 0;
    public const int AddressRequestLength = 2;
    public const int MapRequestLength = 12;

    private const byte OpAddress = 0;
    private const byte OpMapUdp = 1;
    private const byte ResponseBit = 0x80;

    public const ushort Success = 0;
    public const ushort UnsupportedVersion = 1;

    public static int WriteAddressRequest(Span<byte> output)
    {
        output[0] = Version;
        output[1] = OpAddress;
        return AddressRequestLength;
    }

    /// <summary>Maps UDP <paramref name="internalPort"/>; lifetime 0 (with suggested port 0) deletes it.</summary>
    public static int WriteMapRequest(Span<byte> output, ushort internalPort, ushort suggestedPort, uint lifetime)
    {
        var message = output[..MapRequestLength];
        message.Clear();
        message[0] = Version;
        message[1] = OpMapUdp;
        BinaryPrimitives.WriteUInt16BigEndian(message[4..], internalPort);
        BinaryPrimitives.WriteUInt16BigEndian(message[6..], suggestedPort);
        BinaryPrimitives.WriteUInt32BigEndian(message[8..], lifetime);
        return MapRequestLength;
    }

    /// <summary>True for any NAT-PMP response: version 0 with the response bit. A NAT-PMP-only server answers a PCP request this way.</summary>
    public static bool IsResponse(ReadOnlySpan<byte> datagram) => datagram.Length >= 4 && datagram[0] == Version && (datagram[1] & ResponseBit) != 0;

    public static ushort ResultOf(ReadOnlySpan<byte> datagram) => BinaryPrimitives.ReadUInt16BigEndian(datagram[2..]);

    /// <summary>The external address response (12 bytes): its result and, on success, the address.</summary>
    public static bool TryReadAddress(ReadOnlySpan<byte> datagram, out ushort result, out System.Net.IPAddress? external)
    {
        external = null;
        result = 0;
        if (!IsResponse(datagram) || datagram[1] != (ResponseBit | OpAddress)) return false;
        result = ResultOf(datagram);
        if (result != Success) return true;
        if (datagram.Length < 12) return false;
        external = new System.Net.IPAddress(datagram.Slice(8, 4));
        return true;
    }

    /// <summary>The UDP mapping response (16 bytes): result, internal port, external port and lifetime granted.</summary>
    public static bool TryReadMap(ReadOnlySpan<byte> datagram, out ushort result, out ushort internalPort, out ushort externalPort, out uint lifetime)
    {
        internalPort = externalPort = 0;
        lifetime = 0;
        result = 0;
        if (!IsResponse(datagram) || datagram[1] != (ResponseBit | OpMapUdp)) return false;
        result = ResultOf(datagram);
        if (result != Success) return true;
        if (datagram.Length < 16) return false;
        internalPort = BinaryPrimitives.ReadUInt16BigEndian(datagram[8..]);
        externalPort = BinaryPrimitives.ReadUInt16BigEndian(datagram[10..]);
        lifetime = BinaryPrimitives.ReadUInt32BigEndian(datagram[12..]);
        return true;
    }

    public static string ResultName(ushort result) => result switch
    {
        0 => "success",
        1 => "unsupported version",
        2 => "not authorized (refused)",
        3 => "network failure",
        4 => "out of resources",
        5 => "unsupported opcode",
        _ => $"result {result}",
    };
}
