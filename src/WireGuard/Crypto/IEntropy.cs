using System.Security.Cryptography;

namespace Mesh.WireGuard.Crypto;

/// <summary>Where keys, indices, cookie secrets and jitter come from; the NAT lab seeds its own for repeatable runs.</summary>
public interface IEntropy
{
    void Fill(Span<byte> buffer);

    /// <summary>A uniformly distributed integer in [0, maxExclusive) for timer jitter: not for secrets.</summary>
    int NextInt(int maxExclusive);
}

public sealed class SystemEntropy : IEntropy
{
    public static readonly SystemEntropy Instance = new();

    public void Fill(Span<byte> buffer) => RandomNumberGenerator.Fill(buffer);

    // Jitter is drawn on the data path; it needs to be unpredictable to peers' timing, not secret.
    public int NextInt(int maxExclusive) => Random.Shared.Next(maxExclusive);
}
