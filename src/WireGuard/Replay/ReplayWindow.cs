namespace Mesh.WireGuard.Replay;

/// <summary>
/// RFC 6479 anti-replay bitmap: 128 blocks of 64 bits in a ring, accepting each counter once within
/// the last 8128 (127 x 64) counters of the highest seen. Not thread-safe; one per receiving keypair.
/// </summary>
public sealed class ReplayWindow
{
    private const int BlockBitLog = 6;
    private const int BlockBits = 1 << BlockBitLog;
    private const int RingBlocks = 128;
    public const int WindowSize = (RingBlocks - 1) * BlockBits;

    private readonly ulong[] _ring = new ulong[RingBlocks];
    private ulong _last;

    /// <summary>Accepts a counter (and remembers it) if it is new, below the limit and not too old.</summary>
    public bool TryAccept(ulong counter, ulong limit)
    {
        if (counter >= limit) return false;
        var block = counter >> BlockBitLog;
        if (counter > _last)
        {
            var current = _last >> BlockBitLog;
            var diff = Math.Min(block - current, RingBlocks);
            for (var i = 1UL; i <= diff; i++) _ring[(int)((current + i) % RingBlocks)] = 0;
            _last = counter;
        }
        else if (_last - counter > WindowSize)
        {
            return false;
        }

        var index = (int)(block % RingBlocks);
        var bit = 1UL << (int)(counter & (BlockBits - 1));
        if ((_ring[index] & bit) != 0) return false;
        _ring[index] |= bit;
        return true;
    }

    public void Reset()
    {
        Array.Clear(_ring);
        _last = 0;
    }
}
