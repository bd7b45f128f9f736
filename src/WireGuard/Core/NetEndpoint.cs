using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Mesh.WireGuard.Core;

/// <summary>An IP:port without allocation: IPv4 is kept as IPv4-mapped IPv6 so one comparison serves both.</summary>
public readonly struct NetEndpoint : IEquatable<NetEndpoint>
{
    private readonly ulong _high;
    private readonly ulong _low;

    public NetEndpoint(IPAddress address, int port)
    {
        Span<byte> bytes = stackalloc byte[16];
        if (address.AddressFamily == AddressFamily.InterNetwork) address = address.MapToIPv6();
        address.TryWriteBytes(bytes, out _);
        _high = BinaryPrimitives.ReadUInt64BigEndian(bytes);
        _low = BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]);
        Port = (ushort)port;
    }

    public NetEndpoint(IPEndPoint endpoint) : this(endpoint.Address, endpoint.Port) { }

    private NetEndpoint(ulong high, ulong low, ushort port)
    {
        _high = high;
        _low = low;
        Port = port;
    }

    /// <summary>From 16 address bytes in network order (IPv4 as IPv4-mapped IPv6), without allocating.</summary>
    public static NetEndpoint FromAddressBytes(ReadOnlySpan<byte> address16, ushort port) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(address16), BinaryPrimitives.ReadUInt64BigEndian(address16[8..]), port);

    /// <summary>From 4 IPv4 address bytes in network order, without allocating.</summary>
    public static NetEndpoint FromIPv4Bytes(ReadOnlySpan<byte> address4, ushort port) =>
        new(0, 0xFFFF_0000_0000UL | BinaryPrimitives.ReadUInt32BigEndian(address4), port);

    /// <summary>The 16 address bytes in network order, IPv4 as IPv4-mapped IPv6.</summary>
    public void WriteMappedAddress(Span<byte> destination16) => WriteAddress(destination16);

    public ushort Port { get; }
    public bool IsIPv4 => _high == 0 && (_low >> 32) == 0xFFFF;
    public bool IsEmpty => _high == 0 && _low == 0 && Port == 0;

    public IPAddress Address
    {
        get
        {
            Span<byte> bytes = stackalloc byte[16];
            WriteAddress(bytes);
            var address = new IPAddress(bytes);
            return IsIPv4 ? address.MapToIPv4() : address;
        }
    }

    /// <summary>The address (4 bytes for IPv4, 16 for IPv6) and the port, big-endian: what a cookie is bound to.</summary>
    public int WriteBytes(Span<byte> output)
    {
        var length = IsIPv4 ? 4 : 16;
        Span<byte> full = stackalloc byte[16];
        WriteAddress(full);
        full[(16 - length)..].CopyTo(output);
        BinaryPrimitives.WriteUInt16BigEndian(output[length..], Port);
        return length + 2;
    }

    public IPEndPoint ToIPEndPoint() => new(Address, Port);

    public static NetEndpoint Parse(string text) => new(IPEndPoint.Parse(text));

    public bool Equals(NetEndpoint other) => _high == other._high && _low == other._low && Port == other.Port;
    public override bool Equals(object? obj) => obj is NetEndpoint other && Equals(other);
    public override int GetHashCode() => HashCode.Combine(_high, _low, Port);
    public static bool operator ==(NetEndpoint a, NetEndpoint b) => a.Equals(b);
    public static bool operator !=(NetEndpoint a, NetEndpoint b) => !a.Equals(b);
    public override string ToString() => IsIPv4 ? $"{Address}:{Port}" : $"[{Address}]:{Port}";

    private void WriteAddress(Span<byte> bytes)
    {
        BinaryPrimitives.WriteUInt64BigEndian(bytes, _high);
        BinaryPrimitives.WriteUInt64BigEndian(bytes[8..], _low);
    }
}
