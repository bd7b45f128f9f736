using System.Security.Cryptography;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;

namespace Mesh.WireGuard.Noise;

public enum HandshakeState
{
    Zeroed,
    InitiationCreated,
    InitiationConsumed,
    ResponseCreated,
    ResponseConsumed,
}

/// <summary>One peer's handshake in progress, and what must survive between handshakes (the replay timestamp).</summary>
public sealed class Handshake
{
    public Handshake(PublicKey remoteStatic) => RemoteStatic = remoteStatic;

    public PublicKey RemoteStatic { get; }
    public HandshakeState State { get; internal set; }
    public uint LocalIndex { get; internal set; }
    public uint RemoteIndex { get; internal set; }

    internal byte[] Hash { get; } = new byte[Blake2s.HashSize];
    internal byte[] ChainingKey { get; } = new byte[Blake2s.HashSize];
    /// <summary>Our ephemeral private key while an initiation we sent awaits its response; pinned so no copy is left behind.</summary>
    internal byte[] LocalEphemeral { get; } = GC.AllocateArray<byte>(X25519.KeySize, pinned: true);
    internal byte[] RemoteEphemeral { get; } = new byte[X25519.KeySize];
    internal byte[] PresharedKey { get; } = new byte[Key32.Size];

    /// <summary>DH(local static, remote static), computed when either key changes.</summary>
    internal byte[] StaticStatic { get; } = new byte[X25519.KeySize];
    internal bool StaticStaticValid { get; set; }

    /// <summary>The newest TAI64N timestamp accepted from this peer; older or equal ones are replays.</summary>
    internal byte[] LatestTimestamp { get; } = new byte[Tai64N.Size];
    internal TimeSpan? LastInitiationConsumed { get; set; }

    public void SetPresharedKey(PresharedKey? key)
    {
        if (key is null) Array.Clear(PresharedKey);
        else key.Span.CopyTo(PresharedKey);
    }

    /// <summary>Recomputes the static-static secret for a (new) local private key.</summary>
    public void SetLocalKey(PrivateKey? local)
    {
        StaticStaticValid = local is not null && local.SharedSecret(StaticStatic, RemoteStatic);
        if (!StaticStaticValid) Array.Clear(StaticStatic);
    }

    /// <summary>Forgets the handshake in progress (keys, ephemeral, indices); the replay timestamp stays.</summary>
    internal void Clear()
    {
        CryptographicOperations.ZeroMemory(Hash);
        CryptographicOperations.ZeroMemory(ChainingKey);
        CryptographicOperations.ZeroMemory(LocalEphemeral);
        CryptographicOperations.ZeroMemory(RemoteEphemeral);
        LocalIndex = 0;
        RemoteIndex = 0;
        State = HandshakeState.Zeroed;
    }
}
