using System.Buffers.Binary;
using System.Net;
using Mesh.WireGuard.Core;

namespace Mesh.Traversal.PortMapping;

/// <summary>A PCP MAP response (RFC 6887 §11.1), or the NAT-PMP answer a server that only speaks NAT-PMP gives instead.</summary>
public readonly record struct PcpMapResponse(byte Result, uint Lifetime, uint Epoch, ReadOnlyMemory<byte> Nonce, ushort InternalPort, NetEndpoint External);

/// <summary>A PCP MAP request for UDP as a server reads it: who asks, for which internal port, for how long.</summary>
public readonly record struct PcpMapRequest(uint Lifetime, IPAddress Client, ReadOnlyMemory<byte> Nonce, ushort InternalPort, ushort SuggestedPort);

/// <summary>PCP's MAP opcode over UDP (RFC 6887): the request this client sends and the response it reads.</summary>
public static class PcpMessage
{
    public const int Port = 5351;
    public const byte Version = 2;
    public const int MapLength = 60;
    public const int NonceLength = 12;

    private const byte OpMap = 1;
    private const byte ResponseBit = 0x80;
    private const byte Udp = 17;

    /// <summary>RFC 6887 §7.4 result codes.</summary>
    public const byte Success = 0;
    public const byte UnsupportedVersion = 1;

    /// <summary>
    /// A MAP request for UDP from <paramref name="client"/> (the address the request leaves from, or the server
    /// answers ADDRESS_MISMATCH); lifetime 0 deletes the mapping with that nonce.
    /// </summary>
    public static int WriteMap(Span<byte> output, IPAddress client, ReadOnlySpan<byte> nonce, ushort internalPort, ushort suggestedPort, uint lifetime)
    {
        var message = output[..MapLength];
        message.Clear();
        message[0] = Version;
        message[1] = OpMap;
        BinaryPrimitives.WriteUInt32BigEndian(message[4..], lifetime);
        new NetEndpoint(client, 0).WriteMappedAddress(message.Slice(8, 16));
        nonce[..NonceLength].CopyTo(message[24..]);
        message[36] = Udp;
        BinaryPrimitives.WriteUInt16BigEndian(message[40..], internalPort);
        BinaryPrimitives.WriteUInt16BigEndian(message[42..], suggestedPort);
        // The suggested external address stays all zeros (::): any address. For IPv4 it is ::ffff:0.0.0.0.
        if (client.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork) message[54] = message[55] = 0xFF;
        return MapLength;
    }

    /// <summary>Reads a MAP request for UDP (what a PCP server, such as the NAT lab's router, receives); false for anything else.</summary>
    public static bool TryReadMapRequest(ReadOnlySpan<byte> datagram, out PcpMapRequest request)
    {
        request = default;
        if (datagram.Length < MapLength || datagram[0] != Version || datagram[1] != OpMap || datagram[36] != Udp) return false;
        var client = NetEndpoint.FromAddressBytes(datagram.Slice(8, 16), 0).Address;
        request = new PcpMapRequest(BinaryPrimitives.ReadUInt32BigEndian(datagram[4..]), client, datagram.Slice(24, NonceLength).ToArray(),
            BinaryPrimitives.ReadUInt16BigEndian(datagram[40..]), BinaryPrimitives.ReadUInt16BigEndian(datagram[42..]));
        return true;
    }

    /// <summary>A MAP response to <paramref name="request"/>: the external endpoint granted, for <paramref name="lifetime"/> seconds.</summary>
    public static int WriteMapResponse(Span<byte> output, in PcpMapRequest request, byte result, uint lifetime, uint epoch, NetEndpoint external)
    {
        var message = output[..MapLength];
        message.Clear();
        message[0] = Version;
        message[1] = ResponseBit | OpMap;
        message[3] = result;
        BinaryPrimitives.WriteUInt32BigEndian(message[4..], lifetime);
        BinaryPrimitives.WriteUInt32BigEndian(message[8..], epoch);
        request.Nonce.Span.CopyTo(message[24..]);
        message[36] = Udp;
        BinaryPrimitives.WriteUInt16BigEndian(message[40..], request.InternalPort);
        BinaryPrimitives.WriteUInt16BigEndian(message[42..], external.Port);
        external.WriteMappedAddress(message.Slice(44, 16));
        return MapLength;
    }

    /// <summary>True when <paramref name="datagram"/> is a PCP response (to anything): version 2 with the response bit.</summary>
    public static bool IsResponse(ReadOnlySpan<byte> datagram) => datagram.Length >= 24 && datagram[0] == Version && (datagram[1] & ResponseBit) != 0;

    /// <summary>Reads a MAP response; false for anything else or anything cut short.</summary>
    public static bool TryReadMap(ReadOnlySpan<byte> datagram, out PcpMapResponse response)
    {
        response = default;
        if (!IsResponse(datagram) || (datagram[1] & 0x7F) != OpMap) return false;
        var result = datagram[3];
        var lifetime = BinaryPrimitives.ReadUInt32BigEndian(datagram[4..]);
        var epoch = BinaryPrimitives.ReadUInt32BigEndian(datagram[8..]);
        // An error response may carry only the header (RFC 6887 §8.3 lets a server omit what it could not parse).
        if (datagram.Length < MapLength)
        {
            if (result == Success) return false;
            response = new PcpMapResponse(result, lifetime, epoch, ReadOnlyMemory<byte>.Empty, 0, default);
            return true;
        }
        var external = NetEndpoint.FromAddressBytes(datagram.Slice(44, 16), BinaryPrimitives.ReadUInt16BigEndian(datagram[42..]));
        response = new PcpMapResponse(result, lifetime, epoch, datagram.Slice(24, NonceLength).ToArray(), BinaryPrimitives.ReadUInt16BigEndian(datagram[40..]), external);
        return true;
    }

    public static string ResultName(byte result) => result switch
    {
        0 => "success",
        1 => "unsupported version",
        2 => "not authorized",
        3 => "malformed request",
        4 => "unsupported opcode",
        5 => "unsupported option",
        6 => "malformed option",
        7 => "network failure",
        8 => "no resources",
        9 => "unsupported protocol",
        10 => "user quota exceeded",
        11 => "cannot provide external address",
        12 => "address mismatch",
        13 => "excessive remote peers",
        _ => $"result {result}",
    };
}
