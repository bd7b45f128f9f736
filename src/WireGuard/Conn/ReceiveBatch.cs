using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Mesh.WireGuard.Core;

namespace Mesh.WireGuard.Conn;

/// <summary>
/// What one recvmmsg(2) brought in: up to <see cref="Messages"/> messages, each of which UDP GRO may have
/// coalesced from several datagrams of one sender (the segment size comes in a UDP_GRO control message),
/// split back into the datagrams. Buffers are pinned and made once per receiving thread.
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
        Count = 0;
        LargestCoalesced = 0;
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
                Count++;
                pieces++;
            }
            LargestCoalesced = Math.Max(LargestCoalesced, pieces);
        }
    }
}
