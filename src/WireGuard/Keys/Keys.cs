using System.Security.Cryptography;
using Mesh.WireGuard.Crypto;

namespace Mesh.WireGuard.Keys;

/// <summary>A 32-byte key as WireGuard writes it: base64 in configs and `wg`, lowercase hex in the UAPI.</summary>
public abstract class Key32
{
    public const int Size = 32;
    private protected readonly byte[] Bytes;

    private protected Key32(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size) throw new ArgumentException($"A key is {Size} bytes, not {bytes.Length}.", nameof(bytes));
        Bytes = bytes.ToArray();
    }

    public ReadOnlySpan<byte> Span => Bytes;

    public string ToBase64() => Convert.ToBase64String(Bytes);

    public string ToHex() => Convert.ToHexStringLower(Bytes);

    public bool IsZero => Bytes.AsSpan().IndexOfAnyExcept((byte)0) < 0;

    /// <summary>Parses 44 characters of base64; the error says what is wrong without echoing a secret.</summary>
    private protected static byte[] ParseBase64(string text, string what)
    {
        text = text.Trim();
        Span<byte> bytes = stackalloc byte[Size + 3];
        if (text.Length != 44 || !Convert.TryFromBase64String(text, bytes, out var written) || written != Size)
        {
            throw new FormatException($"{what} must be {Size} bytes in base64 (44 characters ending in '=').");
        }
        return bytes[..Size].ToArray();
    }

    private protected static byte[] ParseHex(string text, string what)
    {
        if (text.Length != Size * 2) throw new FormatException($"{what} must be {Size * 2} hex digits.");
        try
        {
            return Convert.FromHexString(text);
        }
        catch (FormatException)
        {
            throw new FormatException($"{what} must be {Size * 2} hex digits.");
        }
    }
}

public sealed class PublicKey : Key32, IEquatable<PublicKey>
{
    private readonly int _hash;

    public PublicKey(ReadOnlySpan<byte> bytes) : base(bytes) => _hash = BitConverter.ToInt32(Bytes, 0) ^ BitConverter.ToInt32(Bytes, 28);

    public static PublicKey Parse(string base64) => new(ParseBase64(base64, "A public key"));

    public static PublicKey ParseHex(string hex) => new(ParseHex(hex, "A public key"));

    public bool Equals(PublicKey? other) => other is not null && Bytes.AsSpan().SequenceEqual(other.Bytes);
    public override bool Equals(object? obj) => Equals(obj as PublicKey);
    public override int GetHashCode() => _hash;
    public override string ToString() => ToBase64();
}

/// <summary>A Curve25519 private key; it zeroes its bytes when disposed and never prints them by accident.</summary>
public sealed class PrivateKey : Key32, IDisposable
{
    private PrivateKey(ReadOnlySpan<byte> bytes) : base(bytes)
    {
        Span<byte> pub = stackalloc byte[Size];
        X25519.PublicKey(pub, Bytes);
        PublicKey = new PublicKey(pub);
    }

    public PublicKey PublicKey { get; }

    public static PrivateKey Generate(IEntropy? entropy = null)
    {
        Span<byte> bytes = stackalloc byte[Size];
        X25519.GeneratePrivateKey(bytes, entropy ?? SystemEntropy.Instance);
        var key = new PrivateKey(bytes);
        bytes.Clear();
        return key;
    }

    public static PrivateKey FromBytes(ReadOnlySpan<byte> bytes) => new(bytes);

    public static PrivateKey Parse(string base64) => new(ParseBase64(base64, "A private key"));

    public static PrivateKey ParseHex(string hex) => new(ParseHex(hex, "A private key"));

    /// <summary>DH with a peer's public key; false for a low-order public key.</summary>
    public bool SharedSecret(Span<byte> shared, PublicKey peer) => X25519.SharedSecret(shared, Bytes, peer.Span);

    public void Dispose() => CryptographicOperations.ZeroMemory(Bytes);

    public override string ToString() => "(private key)";
}

public sealed class PresharedKey : Key32, IDisposable
{
    public static readonly PresharedKey Zero = new(new byte[Size]);

    private PresharedKey(ReadOnlySpan<byte> bytes) : base(bytes) { }

    public static PresharedKey Generate(IEntropy? entropy = null)
    {
        Span<byte> bytes = stackalloc byte[Size];
        (entropy ?? SystemEntropy.Instance).Fill(bytes);
        return new PresharedKey(bytes);
    }

    public static PresharedKey FromBytes(ReadOnlySpan<byte> bytes) => new(bytes);

    public static PresharedKey Parse(string base64) => new(ParseBase64(base64, "A preshared key"));

    public static PresharedKey ParseHex(string hex) => new(ParseHex(hex, "A preshared key"));

    public void Dispose()
    {
        if (!ReferenceEquals(this, Zero)) CryptographicOperations.ZeroMemory(Bytes);
    }

    public override string ToString() => "(preshared key)";
}
