using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;

namespace Mesh.WireGuard.Noise;

/// <summary>The interface's static key pair and the values derived from it once.</summary>
public sealed class LocalIdentity
{
    public LocalIdentity(PrivateKey privateKey)
    {
        PrivateKey = privateKey;
        PublicKey = privateKey.PublicKey;
        Blake2s.Hash(ResponderInitialHash, NoiseConstants.InitialHash, PublicKey.Span);
    }

    public PrivateKey PrivateKey { get; }
    public PublicKey PublicKey { get; }

    /// <summary>BLAKE2s(InitialHash || our public key): where every initiation to us starts.</summary>
    internal byte[] ResponderInitialHash { get; } = new byte[Blake2s.HashSize];
}
