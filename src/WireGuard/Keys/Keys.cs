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

    /// <summary>Parses 44 characters of base64 into 32 bytes; the error says what is wrong without echoing a secret.</summary>
    internal static void ParseBase64(string text, string what, Span<byte> destination)
    {
        text = text.Trim();
        Span<byte> bytes = stackalloc byte[Size + 3];
        try
        {
            if (text.Length != 44 || !Convert.TryFromBase64String(text, bytes, out var written) || written != Size)
            {
                throw new FormatException($"{what} must be {Size} bytes in base64 (44 characters ending in '=').");
            }
            bytes[..Size].CopyTo(destination);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    internal static void ParseHex(string text, string what, Span<byte> destination)
    {
        if (text.Length != Size * 2 || Convert.FromHexString(text, destination[..Size], out _, out var written) != System.Buffers.OperationStatus.Done || written != Size)
        {
            throw new FormatException($"{what} must be {Size * 2} hex digits.");
        }
    }

    private protected static byte[] ParseBase64(string text, string what)
    {
        var bytes = new byte[Size];
        ParseBase64(text, what, bytes);
        return bytes;
    }

    private protected static byte[] ParseHex(string text, string what)
    {
        var bytes = new byte[Size];
        ParseHex(text, what, bytes);
        return bytes;
    }
}

public sealed class PublicKey : Key32, IEquatable<PublicKey>
{
    private readonly int _hash;

    private NSec.Cryptography.PublicKey? _agreement;

    public PublicKey(ReadOnlySpan<byte> bytes) : base(bytes) => _hash = BitConverter.ToInt32(Bytes, 0) ^ BitConverter.ToInt32(Bytes, 28);

    /// <summary>The key as NSec takes it for key agreement, made on first use.</summary>
    internal NSec.Cryptography.PublicKey Agreement => _agreement ??= X25519.ImportPublicKey(Bytes);

    public static PublicKey Parse(string base64) => new(ParseBase64(base64, "A public key"));

    public static PublicKey ParseHex(string hex) => new(ParseHex(hex, "A public key"));

    private static readonly Lazy<PrivateKey> LowOrderProbe = new(() => PrivateKey.Generate());

    /// <summary>
    /// Whether the key is a point of small order: X25519 with it gives all zeros whatever the private key, so no
    /// handshake or pair key can be made with it (and a hostile map may name one).
    /// </summary>
    public bool IsLowOrder()
    {
        Span<byte> shared = stackalloc byte[Size];
        var usable = LowOrderProbe.Value.SharedSecret(shared, this);
        shared.Clear();
        return !usable;
    }

    public bool Equals(PublicKey? other) => other is not null && Bytes.AsSpan().SequenceEqual(other.Bytes);
    public override bool Equals(object? obj) => Equals(obj as PublicKey);
    public override int GetHashCode() => _hash;
    public override string ToString() => ToBase64();
}

/// <summary>
/// A Curve25519 private key, held in an NSec key (libsodium's guarded memory) and freed when disposed; its
/// bytes come out only where they must be written (key files, the UAPI), and never by accident in a string.
/// </summary>
public sealed class PrivateKey : IDisposable
{
    public const int Size = Key32.Size;
    private readonly NSec.Cryptography.Key _key;
    private readonly GuardedBytes _handshakeCopy;

    private PrivateKey(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size) throw new ArgumentException($"A key is {Size} bytes, not {bytes.Length}.", nameof(bytes));
        IsZero = bytes.IndexOfAnyExcept((byte)0) < 0;
        _key = X25519.Import(bytes, exportable: true);
        _handshakeCopy = new GuardedBytes(bytes);
        Span<byte> pub = stackalloc byte[Size];
        X25519.WritePublicKey(_key, pub);
        PublicKey = new PublicKey(pub);
    }

    public PublicKey PublicKey { get; }

    /// <summary>All zero bytes: what `wg set private_key` uses to remove the key.</summary>
    public bool IsZero { get; }

    internal NSec.Cryptography.Key Key => _key;

    public static PrivateKey Generate(IEntropy? entropy = null)
    {
        Span<byte> bytes = stackalloc byte[Size];
        X25519.GeneratePrivateKey(bytes, entropy ?? SystemEntropy.Instance);
        try
        {
            return new PrivateKey(bytes);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    public static PrivateKey FromBytes(ReadOnlySpan<byte> bytes) => new(bytes);

    public static PrivateKey Parse(string base64) => FromText(base64, hex: false);

    public static PrivateKey ParseHex(string hex) => FromText(hex, hex: true);

    /// <summary>Copies the key's bytes out, for storage the caller zeroes after use.</summary>
    public void Export(Span<byte> destination)
    {
        if (!_key.TryExport(NSec.Cryptography.KeyBlobFormat.RawPrivateKey, destination[..Size], out _)) throw new CryptographicException("The private key cannot be exported.");
    }

    public string ToBase64() => Format(static bytes => Convert.ToBase64String(bytes));

    public string ToHex() => Format(static bytes => Convert.ToHexStringLower(bytes));

    /// <summary>DH with a peer's public key; false for a low-order public key.</summary>
    public bool SharedSecret(Span<byte> shared, PublicKey peer) => X25519.SharedSecret(shared, _key, peer.Agreement);

    /// <summary>DH for handshake messages, safe on many threads at once (see <see cref="X25519.StaticSharedSecret"/>).</summary>
    internal bool HandshakeSharedSecret(Span<byte> shared, ReadOnlySpan<byte> publicKey) => X25519.StaticSharedSecret(shared, _handshakeCopy, publicKey);

    public void Dispose()
    {
        _key.Dispose();
        _handshakeCopy.Dispose();
    }

    public override string ToString() => "(private key)";

    private string Format(Func<ReadOnlySpan<byte>, string> format)
    {
        Span<byte> bytes = stackalloc byte[Size];
        Export(bytes);
        try
        {
            return format(bytes);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    private static PrivateKey FromText(string text, bool hex)
    {
        Span<byte> bytes = stackalloc byte[Size];
        try
        {
            if (hex) Key32.ParseHex(text, "A private key", bytes);
            else Key32.ParseBase64(text, "A private key", bytes);
            return new PrivateKey(bytes);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }
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
