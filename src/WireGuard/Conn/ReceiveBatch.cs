using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Mesh.WireGuard.Core;

namespace Mesh.WireGuard.Conn;

/// <summary>
/// What one recvmmsg(2) brought in: up to <see cref="Messages"/> messages, each of which UDP GRO may have
/// coalesced from several datagrams of one sender (the segment size comes in a UDP_GRO control message),
/// split back into the datagrams. Buffers are pinned and made once per receiving thread. A batch can also be
/// filled datagram by datagram (<see cref="Append"/>) from elsewhere than a socket, each with where it came from,
/// and a bind may narrow its datagrams in place (a relay's frame to the datagram it carries) and drop the rest.
/// </summary>
public sealed class ReceiveBatch
{
    public const int Messages = 8;
    private const int SlotSize = 65536;
    private const int NameSize = 32;
    private const int ControlSize = 64;
    private const int MaxDatagrams = Messages * 64;

    private readonly byte[] _data = GC.AllocateArray<byte>(Messages * SlotSize, pinned: true);
    private readonly byte[] _names = GC.AllocateArray<byte>(Messages * NameSize, pinned: true);
    private readonly byte[] _controls = GC.AllocateArray<byte>(Messages * ControlSize, pinned: true);
    private readonly SocketCalls.IoVector[] _vectors = GC.AllocateArray<SocketCalls.IoVector>(Messages, pinned: true);
    private readonly SocketCalls.MultiMessage[] _messages = GC.AllocateArray<SocketCalls.MultiMessage>(Messages, pinned: true);
    private readonly int[] _offsets = new int[MaxDatagrams];
    private readonly int[] _lengths = new int[MaxDatagrams];
    private readonly NetEndpoint[] _sources = new NetEndpoint[MaxDatagrams];
    private readonly int[] _sockets = new int[MaxDatagrams];
    private readonly string?[] _links = new string?[MaxDatagrams];
    private int _appended;

    public ReceiveBatch()
    {
        for (var i = 0; i < Messages; i++)
        {
            _vectors[i] = new SocketCalls.IoVector { Base = Marshal.UnsafeAddrOfPinnedArrayElement(_data, i * SlotSize), Length = SlotSize };
        }
    }

    /// <summary>Datagrams in this batch, in arrival order.</summary>
    public int Count { get; private set; }

    public Span<byte> Datagram(int index) => _data.AsSpan(_offsets[index], _lengths[index]);

    public NetEndpoint Source(int index) => _sources[index];

    /// <summary>The socket the datagram came on: 0 for the interface's own, else a bind's other socket (-1 for a link).</summary>
    public int Socket(int index) => _sockets[index];

    /// <summary>The stream link the datagram came over (a relay's id), or null when it came on a socket.</summary>
    public string? Link(int index) => _links[index];

    /// <summary>Empties the batch for <see cref="Append"/>.</summary>
    public void Clear()
    {
        Count = 0;
        LargestCoalesced = 0;
        _appended = 0;
    }

    /// <summary>Copies a datagram in; false when the batch is full (by count or by bytes).</summary>
    public bool Append(ReadOnlySpan<byte> datagram, NetEndpoint source, int socket, string? link)
    {
        if (Count == MaxDatagrams || _appended + datagram.Length > _data.Length) return false;
        datagram.CopyTo(_data.AsSpan(_appended));
        Set(Count, _appended, datagram.Length, source);
        _sockets[Count] = socket;
        _links[Count] = link;
        _appended += datagram.Length;
        Count++;
        LargestCoalesced = Math.Max(LargestCoalesced, 1);
        return true;
    }

    /// <summary>
    /// Moves datagram <paramref name="from"/> to position <paramref name="to"/> (at most <paramref name="from"/>),
    /// narrowed to the <paramref name="length"/> bytes at <paramref name="start"/> and credited to <paramref name="source"/>.
    /// </summary>
    public void Keep(int from, int to, int start, int length, NetEndpoint source)
    {
        if (to > from || start < 0 || start + length > _lengths[from]) throw new ArgumentOutOfRangeException(nameof(start));
        var socket = _sockets[from];
        var link = _links[from];
        Set(to, _offsets[from] + start, length, source);
        _sockets[to] = socket;
        _links[to] = link;
    }

    /// <summary>Drops every datagram from <paramref name="count"/> on (after <see cref="Keep"/> compacted the batch).</summary>
    public void Truncate(int count) => Count = Math.Min(Count, count);

    private void Set(int index, int offset, int length, NetEndpoint source)
    {
        _offsets[index] = offset;
        _lengths[index] = length;
        _sources[index] = source;
    }

    /// <summary>The largest number of datagrams one message held (1 without GRO): how much coalescing happened.</summary>
    public int LargestCoalesced { get; private set; }

    /// <summary>Resets the message headers for the next recvmmsg; returns the first one.</summary>
    internal ref SocketCalls.MultiMessage Prepare()
    {
        for (var i = 0; i < Messages; i++)
        {
            _messages[i] = new SocketCalls.MultiMessage
            {
                Header = new SocketCalls.MessageHeader
                {
                    Name = Marshal.UnsafeAddrOfPinnedArrayElement(_names, i * NameSize),
                    NameLength = NameSize,
                    IoVectors = Marshal.UnsafeAddrOfPinnedArrayElement(_vectors, i),
                    IoVectorCount = 1,
                    Control = Marshal.UnsafeAddrOfPinnedArrayElement(_controls, i * ControlSize),
                    ControlLength = ControlSize,
                },
            };
        }
        Clear();
        return ref _messages[0];
    }

    /// <summary>Splits the <paramref name="received"/> messages into datagrams.</summary>
    internal void Complete(int received)
    {
        for (var i = 0; i < received; i++)
        {
            ref var message = ref _messages[i];
            var length = (int)message.Length;
            var name = _names.AsSpan(i * NameSize, (int)Math.Min(message.Header.NameLength, NameSize));
            var source = name.Length >= 8 ? UdpBinding.ToEndpoint(name) : default;
            var control = _controls.AsSpan(i * ControlSize, (int)Math.Min(message.Header.ControlLength, ControlSize));
            var gro = SocketCalls.FindControl(control, SocketCalls.SOL_UDP, SocketCalls.UDP_GRO);
            var segment = gro.Length >= 2 ? (gro.Length >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(gro) : BinaryPrimitives.ReadUInt16LittleEndian(gro)) : 0;
            if (segment <= 0 || segment >= length) segment = length;
            if (length == 0) continue;
            var pieces = 0;
            for (var offset = 0; offset < length; offset += segment)
            {
                if (Count == MaxDatagrams) return;
                _offsets[Count] = i * SlotSize + offset;
                _lengths[Count] = Math.Min(segment, length - offset);
                _sources[Count] = source;
                _sockets[Count] = 0;
                _links[Count] = null;
                Count++;
                pieces++;
            }
            LargestCoalesced = Math.Max(LargestCoalesced, pieces);
        }
    }
}
