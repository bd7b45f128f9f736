namespace Mesh.WireGuard.Tun;

/// <summary>
/// Packets laid end to end in one reusable buffer: what one TUN read becomes once a super-packet is split.
/// Made once per reading thread, so splitting allocates nothing.
/// </summary>
public sealed class PacketBatch(int capacity = 256, int bufferSize = 512 * 1024)
{
    private readonly byte[] _buffer = new byte[bufferSize];
    private readonly int[] _offsets = new int[capacity];
    private readonly int[] _lengths = new int[capacity];
    private int _used;

    public int Count { get; private set; }

    public Span<byte> this[int index] => _buffer.AsSpan(_offsets[index], _lengths[index]);

    public void Clear()
    {
        Count = 0;
        _used = 0;
    }

    /// <summary>Drops the packets after the first <paramref name="count"/>.</summary>
    public void Truncate(int count)
    {
        if (count >= Count) return;
        Count = count;
        _used = count == 0 ? 0 : _offsets[count - 1] + _lengths[count - 1];
    }

    /// <summary>Space for the next packet, or an empty span when the batch is full.</summary>
    public Span<byte> Reserve(int length) =>
        Count == _offsets.Length || _used + length > _buffer.Length ? Span<byte>.Empty : _buffer.AsSpan(_used, length);

    /// <summary>Adds the packet written into the span <see cref="Reserve"/> returned.</summary>
    public void Commit(int length)
    {
        _offsets[Count] = _used;
        _lengths[Count] = length;
        _used += length;
        Count++;
    }

    /// <summary>Adds a copy of a packet; false when it does not fit.</summary>
    public bool Add(ReadOnlySpan<byte> packet)
    {
        var space = Reserve(packet.Length);
        if (space.IsEmpty && !packet.IsEmpty) return false;
        packet.CopyTo(space);
        Commit(packet.Length);
        return true;
    }
}
