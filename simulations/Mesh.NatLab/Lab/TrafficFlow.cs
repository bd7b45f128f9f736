using System.Buffers.Binary;
using System.Net;
using Mesh.NatLab.Sim;

namespace Mesh.NatLab.Lab;

/// <summary>
/// Application traffic through the tunnel: numbered IPv4/UDP packets from one agent's mesh address to
/// another's at a steady rate, checked on arrival, so every scenario measures the first packet, losses
/// and duplicates end to end.
/// </summary>
public sealed class TrafficFlow
{
    private const int HeaderSize = 28;
    private readonly Scheduler _scheduler;
    private readonly LabAgent _from;
    private readonly LabAgent _to;
    private readonly TimeSpan _interval;
    private readonly Dictionary<long, TimeSpan> _sent = new();
    private readonly HashSet<long> _received = new();
    private readonly long _flowId;
    private long _nextSequence;
    private bool _paused;

    public TrafficFlow(Scheduler scheduler, LabAgent from, LabAgent to, TimeSpan interval, long flowId)
    {
        _scheduler = scheduler;
        _from = from;
        _to = to;
        _interval = interval;
        _flowId = flowId;
        to.TunnelReceived += OnArrival;
    }

    public TimeSpan? FirstDelivered { get; private set; }
    public TimeSpan? LastDelivered { get; private set; }
    public long FirstDeliveredSequence { get; private set; } = -1;
    public int Sent => _sent.Count;
    public int Received => _received.Count;
    public int Malformed { get; private set; }

    public void Start() => _scheduler.Every(_interval, () =>
    {
        if (!_paused) SendOne();
        return true;
    });

    public void Pause() => _paused = true;

    public void Resume() => _paused = false;

    /// <summary>Packets sent between the first delivery and <paramref name="until"/> that never arrived.</summary>
    public int LostAfterFirst(TimeSpan until)
    {
        if (FirstDelivered is null) return 0;
        var lost = 0;
        foreach (var (sequence, at) in _sent)
        {
            if (sequence > FirstDeliveredSequence && at <= until && !_received.Contains(sequence)) lost++;
        }
        return lost;
    }

    /// <summary>Packets sent in [from, until) that never arrived.</summary>
    public int LostBetween(TimeSpan from, TimeSpan until)
    {
        var lost = 0;
        foreach (var (sequence, at) in _sent)
        {
            if (at >= from && at < until && !_received.Contains(sequence)) lost++;
        }
        return lost;
    }

    /// <summary>When the first packet sent at or after a watched moment arrived (see <see cref="Watch"/>).</summary>
    public TimeSpan? FirstDeliveryAfter(TimeSpan since) => _firstAfter.TryGetValue(since, out var at) ? at : null;

    private readonly Dictionary<TimeSpan, TimeSpan> _firstAfter = new();
    private readonly List<TimeSpan> _watches = new();

    /// <summary>Starts watching for the first packet sent at or after <paramref name="since"/> to arrive.</summary>
    public void Watch(TimeSpan since) => _watches.Add(since);

    private void SendOne()
    {
        if (_from.MeshAddress is not { } source || _to.MeshAddress is not { } destination) return;
        var sequence = _nextSequence++;
        var packet = new byte[HeaderSize + 16];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        packet[8] = 64;
        packet[9] = 17;
        source.TryWriteBytes(packet.AsSpan(12), out _);
        destination.TryWriteBytes(packet.AsSpan(16), out _);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(10), Checksum(packet.AsSpan(0, 20)));
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(20), 9000);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(22), 9000);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(24), 24);
        BinaryPrimitives.WriteInt64BigEndian(packet.AsSpan(HeaderSize), _flowId);
        BinaryPrimitives.WriteInt64BigEndian(packet.AsSpan(HeaderSize + 8), sequence);
        _sent[sequence] = _scheduler.Now;
        _from.SendTunnel(packet);
    }

    private void OnArrival(byte[] packet)
    {
        if (packet.Length != HeaderSize + 16 || BinaryPrimitives.ReadInt64BigEndian(packet.AsSpan(HeaderSize)) != _flowId) return;
        var sequence = BinaryPrimitives.ReadInt64BigEndian(packet.AsSpan(HeaderSize + 8));
        if (!_sent.TryGetValue(sequence, out var sentAt) || !new IPAddress(packet.AsSpan(16, 4)).Equals(_to.MeshAddress))
        {
            Malformed++;
            return;
        }
        if (!_received.Add(sequence)) return;
        var now = _scheduler.Now;
        LastDelivered = now;
        if (FirstDelivered is null)
        {
            FirstDelivered = now;
            FirstDeliveredSequence = sequence;
        }
        foreach (var since in _watches)
        {
            if (sentAt >= since && !_firstAfter.ContainsKey(since)) _firstAfter[since] = now;
        }
    }

    private static ushort Checksum(ReadOnlySpan<byte> header)
    {
        uint sum = 0;
        for (var i = 0; i < header.Length; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(header[i..]);
        while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)~sum;
    }
}
