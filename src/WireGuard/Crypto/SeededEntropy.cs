namespace Mesh.WireGuard.Crypto;

/// <summary>Repeatable randomness for simulations and tests. Never for real keys.</summary>
public sealed class SeededEntropy(int seed) : IEntropy
{
    private readonly Random _random = new(seed);
    private readonly object _lock = new();

    public void Fill(Span<byte> buffer)
    {
        lock (_lock) _random.NextBytes(buffer);
    }

    public int NextInt(int maxExclusive)
    {
        lock (_lock) return _random.Next(maxExclusive);
    }
}
