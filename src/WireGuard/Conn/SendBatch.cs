using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Mesh.WireGuard.Core;

namespace Mesh.WireGuard.Conn;

/// <summary>
/// Datagrams gathered for one sendmmsg(2). Consecutive datagrams to one destination of one size (the last
/// may be shorter) share a message with a UDP_SEGMENT control message when GSO is on, so the kernel segments
/// them: the shape of wireguard-go's coalesceMessages. Buffers are pinned and made once per sending thread.
/// </summary>
public sealed class SendBatch
{
    public const int MaxMessages = 64;
    private const int BufferSize = 512 * 1024;
    private const int MaxSegments = 64;
    private const int MaxMessageBytes = 65000;
    private const int NameSize = 28;
    private static readonly int ControlSize = SocketCalls.ControlSpace(2);

    private readonly byte[] _data = GC.AllocateArray<byte>(BufferSize, pinned: true);
    private readonly byte[] _names = GC.AllocateArray<byte>(MaxMessages * NameSize, pinned: true);
    private readonly byte[] _controls = GC.AllocateArray<byte>(MaxMessages * SocketCalls.ControlSpace(2), pinned: true);
    private readonly SocketCalls.IoVector[] _vectors = GC.AllocateArray<SocketCalls.IoVector>(MaxMessages, pinned: true);
    private readonly SocketCalls.MultiMessage[] _messages = GC.AllocateArray<SocketCalls.MultiMessage>(MaxMessages, pinned: true);
    private readonly Entry[] _entries = new Entry[MaxMessages];
    private int _used;

    private struct Entry
    {
        public NetEndpoint Destination;
        public int Offset;
        public int Length;
        public int SegmentSize;
        public int Segments;
        public bool Closed;
    }

    public int Count { get; private set; }

    /// <summary>Datagrams (not messages) waiting.</summary>
    public int Datagrams { get; private set; }

    /// <summary>Takes a copy of the datagram; false when the batch is full or the datagram cannot be batched (flush, then retry or send it alone).</summary>
    public bool Add(ReadOnlySpan<byte> datagram, NetEndpoint destination, bool segmentation)
    {
        if (datagram.IsEmpty || datagram.Length > MaxMessageBytes || _used + datagram.Length > BufferSize) return false;
        if (segmentation && Count > 0)
        {
            ref var last = ref _entries[Count - 1];
            if (!last.Closed && last.Destination == destination && datagram.Length <= last.SegmentSize
                && last.Segments < MaxSegments && last.Length + datagram.Length <= MaxMessageBytes)
            {
                datagram.CopyTo(_data.AsSpan(_used));
                _used += datagram.Length;
                last.Length += datagram.Length;
                last.Segments++;
                last.Closed = datagram.Length < last.SegmentSize;
                Datagrams++;
                return true;
            }
        }
        if (Count == MaxMessages) return false;
        datagram.CopyTo(_data.AsSpan(_used));
        _entries[Count++] = new Entry { Destination = destination, Offset = _used, Length = datagram.Length, SegmentSize = datagram.Length, Segments = 1 };
        _used += datagram.Length;
        Datagrams++;
        return true;
    }

    public void Clear()
    {
        Count = 0;
        Datagrams = 0;
        _used = 0;
    }

    /// <summary>Lays out message <paramref name="index"/> and the ones after it for sendmmsg; returns the first.</summary>
    internal ref SocketCalls.MultiMessage Prepare(int index, bool ipv6Socket)
    {
        Span<byte> size = stackalloc byte[2];
        for (var i = index; i < Count; i++)
        {
            ref var entry = ref _entries[i];
            var name = _names.AsSpan(i * NameSize, NameSize);
            var nameLength = UdpBinding.WriteAddress(name, entry.Destination, ipv6Socket);
            _vectors[i] = new SocketCalls.IoVector { Base = Marshal.UnsafeAddrOfPinnedArrayElement(_data, entry.Offset), Length = entry.Length };
            var controlLength = 0;
            if (entry.Segments > 1)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(size, (ushort)entry.SegmentSize);
                controlLength = SocketCalls.WriteControl(_controls.AsSpan(i * ControlSize, ControlSize), SocketCalls.SOL_UDP, SocketCalls.UDP_SEGMENT, size);
            }
            _messages[i] = new SocketCalls.MultiMessage
            {
                Header = new SocketCalls.MessageHeader
                {
                    Name = Marshal.UnsafeAddrOfPinnedArrayElement(_names, i * NameSize),
                    NameLength = (uint)nameLength,
                    IoVectors = Marshal.UnsafeAddrOfPinnedArrayElement(_vectors, i),
                    IoVectorCount = 1,
                    Control = controlLength > 0 ? Marshal.UnsafeAddrOfPinnedArrayElement(_controls, i * ControlSize) : 0,
                    ControlLength = (nuint)controlLength,
                },
            };
        }
        return ref _messages[index];
    }

    internal bool IsSegmented(int index) => _entries[index].Segments > 1;

    internal NetEndpoint Destination(int index) => _entries[index].Destination;

    /// <summary>How many datagrams message <paramref name="index"/> holds, for sending them one by one without GSO.</summary>
    internal int SegmentCount(int index) => _entries[index].Segments;

    internal ReadOnlySpan<byte> Segment(int index, int segment)
    {
        ref var entry = ref _entries[index];
        var offset = segment * entry.SegmentSize;
        return _data.AsSpan(entry.Offset + offset, Math.Min(entry.SegmentSize, entry.Length - offset));
    }
}
