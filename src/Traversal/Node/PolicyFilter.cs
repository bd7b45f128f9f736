using System.Buffers.Binary;
using System.Collections.Concurrent;
using Mesh.Protos.V1;
using Mesh.WireGuard.Core;
using WgPeer = Mesh.WireGuard.Core.Peer;

namespace Mesh.Traversal.Node;

/// <summary>Why the policy filter dropped a packet; each is counted and shown by <c>mesh-agent status</c>.</summary>
public enum FilterDrop
{
    /// <summary>A TCP connection (a SYN) no rule opens.</summary>
    TcpNotAllowed,
    /// <summary>A UDP datagram no rule admits and no flow this node opened answers.</summary>
    UdpNotAllowed,
    /// <summary>An ICMP request no rule admits (replies and errors pass).</summary>
    IcmpNotAllowed,
    /// <summary>Another protocol no rule names.</summary>
    OtherNotAllowed,
    /// <summary>Too short for its header: nothing to decide on.</summary>
    Malformed,
    /// <summary>With a policy, before this node's own record (its filter) has come: nothing is admitted.</summary>
    NoFilterYet,
}

/// <summary>
/// The mesh policy as this node enforces it on what its peers send (Tailscale's filter): a packet from a peer passes
/// when a rule of this node's filter names one of the peer's source tokens and takes the packet's protocol and port.
/// State as Tailscale keeps it: TCP packets other than a connection's first SYN pass (no connection exists for them
/// to join unless this node opened it, or a rule let the SYN in); UDP passes as the reply to a flow this node opened
/// (a fixed table of recent flows, newest wins a slot); ICMP replies and errors pass. Without a policy everything
/// passes. The data path reads it without locks or allocation; the netmap thread changes it.
/// </summary>
public sealed class PolicyFilter : IInboundFilter
{
    private const int FlowSlots = 4096;
    private const int LaterFragment = -1;
    private static readonly long FlowLifetimeMs = (long)TimeSpan.FromMinutes(2).TotalMilliseconds;

    private readonly long[] _flowKeys = new long[FlowSlots];
    private readonly long[] _flowTimes = new long[FlowSlots];
    private readonly long[] _drops = new long[Enum.GetValues<FilterDrop>().Length];

    /// <summary>The filter and every peer's rights under it, replaced as one (the data path never sees one without the other).</summary>
    private volatile State _state = new(false, null);

    /// <summary>Whether a policy is in force here.</summary>
    public bool Active => _state.Active;

    /// <summary>How many rules this node's filter has (0 without a policy).</summary>
    public int RuleCount => _state.Filter?.Rules.Count ?? 0;

    public long Dropped(FilterDrop reason) => Interlocked.Read(ref _drops[(int)reason]);

    /// <summary>A reason as status shows it: "tcp-not-allowed".</summary>
    public static string Name(FilterDrop reason) => reason switch
    {
        FilterDrop.TcpNotAllowed => "tcp-not-allowed",
        FilterDrop.UdpNotAllowed => "udp-not-allowed",
        FilterDrop.IcmpNotAllowed => "icmp-not-allowed",
        FilterDrop.OtherNotAllowed => "other-not-allowed",
        FilterDrop.Malformed => "malformed",
        _ => "no-filter-yet",
    };

    /// <summary>
    /// This node's filter as its own record gives it, or none: <paramref name="active"/> without a filter admits
    /// nothing (the map came, the record with the filter not yet). Every peer's rights are worked out again.
    /// </summary>
    public void SetFilter(bool active, PacketFilter? filter, IEnumerable<(WgPeer Peer, Protos.V1.Peer Entry)> peers)
    {
        var state = new State(active, filter);
        foreach (var (peer, entry) in peers) state.Set(peer, entry);
        _state = state;
    }

    /// <summary>A peer's record changed (or it was added): what it may open here follows from its source tokens.</summary>
    public void SetPeer(WgPeer peer, Protos.V1.Peer entry) => _state.Set(peer, entry);

    public void RemovePeer(WgPeer peer) => _state.Rights.TryRemove(peer, out _);

    public bool Admits(WgPeer peer, ReadOnlySpan<byte> packet)
    {
        var state = _state;
        if (!state.Active) return true;
        if (!Parse(packet, out var protocol, out var transport, out var v6)) return Drop(FilterDrop.Malformed);
        if (state.Filter is null) return Drop(FilterDrop.NoFilterYet);
        var rights = state.Rights.GetValueOrDefault(peer);
        switch (protocol)
        {
            case LaterFragment:
                return true;
            case IpProto.Tcp:
                if (transport.Length < 14) return Drop(FilterDrop.Malformed);
                // Only a connection's first SYN opens anything: every other TCP packet belongs to one that exists.
                var flags = transport[13];
                if ((flags & 0x02) == 0 || (flags & 0x10) != 0) return true;
                return rights?.Allows(protocol, Port(transport, 2)) == true || Drop(FilterDrop.TcpNotAllowed);
            case IpProto.Udp:
                if (transport.Length < 8) return Drop(FilterDrop.Malformed);
                if (rights?.Allows(protocol, Port(transport, 2)) == true) return true;
                return IsReply(packet, transport, v6) || Drop(FilterDrop.UdpNotAllowed);
            case IpProto.Icmp:
            case IpProto.Icmpv6:
                if (transport.Length < 1) return Drop(FilterDrop.Malformed);
                if (IsIcmpReplyOrError(transport[0], v6)) return true;
                return rights?.Allows(protocol, 0) == true || Drop(FilterDrop.IcmpNotAllowed);
            default:
                return rights?.Allows(protocol, Port(transport, 2)) == true || Drop(FilterDrop.OtherNotAllowed);
        }
    }

    public void Opened(ReadOnlySpan<byte> packet)
    {
        if (!_state.Active || !Parse(packet, out var protocol, out var transport, out var v6) || protocol != IpProto.Udp || transport.Length < 8) return;
        // The flow as its reply will show it: the remote address and port, then this side's port.
        var key = FlowKey(Address(packet, v6, destination: true), Port(transport, 2), Port(transport, 0));
        var slot = (int)((ulong)key % FlowSlots);
        Volatile.Write(ref _flowTimes[slot], Environment.TickCount64);
        Volatile.Write(ref _flowKeys[slot], key);
    }

    private bool IsReply(ReadOnlySpan<byte> packet, ReadOnlySpan<byte> transport, bool v6)
    {
        var key = FlowKey(Address(packet, v6, destination: false), Port(transport, 0), Port(transport, 2));
        var slot = (int)((ulong)key % FlowSlots);
        return Volatile.Read(ref _flowKeys[slot]) == key && Environment.TickCount64 - Volatile.Read(ref _flowTimes[slot]) < FlowLifetimeMs;
    }

    private static long FlowKey(ReadOnlySpan<byte> remote, int remotePort, int localPort)
    {
        var hash = new HashCode();
        hash.AddBytes(remote);
        hash.Add(remotePort);
        var low = hash.ToHashCode();
        var high = HashCode.Combine(low, localPort, remote.Length);
        return ((long)high << 32 | (uint)low) | 1;
    }

    private static bool IsIcmpReplyOrError(byte type, bool v6) => v6
        ? type is 129 or 1 or 2 or 3 or 4
        : type is 0 or 3 or 11 or 12;

    private static ReadOnlySpan<byte> Address(ReadOnlySpan<byte> packet, bool v6, bool destination) => v6
        ? packet.Slice(destination ? 24 : 8, 16)
        : packet.Slice(destination ? 16 : 12, 4);

    private static int Port(ReadOnlySpan<byte> transport, int offset) => transport.Length >= offset + 2 ? BinaryPrimitives.ReadUInt16BigEndian(transport[offset..]) : 0;

    /// <summary>
    /// The protocol and the transport header. An IPv4 fragment after the first has no transport header; it passes as
    /// protocol <see cref="LaterFragment"/> (Tailscale does the same: the first fragment was decided on, and the
    /// rest cannot be reassembled without it), unless it starts within the first 24 bytes, where it could overwrite
    /// the ports or flags the first one was decided on (RFC 1858's overlapping fragments): that is malformed.
    /// </summary>
    private static bool Parse(ReadOnlySpan<byte> packet, out int protocol, out ReadOnlySpan<byte> transport, out bool v6)
    {
        protocol = 0;
        transport = default;
        v6 = false;
        if (packet.Length < 1) return false;
        switch (packet[0] >> 4)
        {
            case 4:
                var headerLength = (packet[0] & 0x0F) * 4;
                if (headerLength < 20 || packet.Length < headerLength) return false;
                var fragmentOffset = BinaryPrimitives.ReadUInt16BigEndian(packet[6..]) & 0x1FFF;
                if (fragmentOffset is 1 or 2) return false;
                protocol = fragmentOffset != 0 ? LaterFragment : packet[9];
                transport = packet[headerLength..];
                return true;
            case 6:
                if (packet.Length < 40) return false;
                v6 = true;
                protocol = packet[6];
                transport = packet[40..];
                return true;
            default:
                return false;
        }
    }

    private bool Drop(FilterDrop reason)
    {
        Interlocked.Increment(ref _drops[(int)reason]);
        return false;
    }

    private static class IpProto
    {
        public const int Icmp = 1;
        public const int Tcp = 6;
        public const int Udp = 17;
        public const int Icmpv6 = 58;
    }

    private sealed class State(bool active, PacketFilter? filter)
    {
        public bool Active { get; } = active;
        public PacketFilter? Filter { get; } = filter;
        public ConcurrentDictionary<WgPeer, PeerRights> Rights { get; } = new(ReferenceEqualityComparer.Instance);

        public void Set(WgPeer peer, Protos.V1.Peer entry)
        {
            if (Filter is null)
            {
                Rights.TryRemove(peer, out _);
                return;
            }
            var grants = new List<PeerRights.Grant>();
            foreach (var rule in Filter.Rules)
            {
                if (entry.PolicySources.Contains(rule.Source)) grants.Add(PeerRights.Grant.Of(rule));
            }
            Rights[peer] = new PeerRights(grants.ToArray());
        }
    }

    /// <summary>What one peer may open on this node: the filter's rules whose source is among the peer's tokens.</summary>
    private sealed class PeerRights(PeerRights.Grant[] grants)
    {
        public bool Allows(int protocol, int port)
        {
            foreach (var grant in grants)
            {
                if (grant.Allows(protocol, port)) return true;
            }
            return false;
        }

        public sealed class Grant(uint[]? protocols, (int First, int Last)[] ports)
        {
            public static Grant Of(FilterRule rule)
            {
                var ranges = new (int, int)[rule.Ports.Count];
                for (var i = 0; i < ranges.Length; i++) ranges[i] = ((int)rule.Ports[i].First, (int)rule.Ports[i].Last);
                return new Grant(rule.Protocols.Count == 0 ? null : [.. rule.Protocols], ranges);
            }

            public bool Allows(int protocol, int port)
            {
                if (protocols is null ? protocol is not (IpProto.Tcp or IpProto.Udp or IpProto.Icmp or IpProto.Icmpv6) : System.Array.IndexOf(protocols, (uint)protocol) < 0) return false;
                // Ports matter for TCP, UDP and SCTP only, as in the policy.
                if (protocol is not (IpProto.Tcp or IpProto.Udp or 132)) return true;
                foreach (var (first, last) in ports)
                {
                    if (port >= first && port <= last) return true;
                }
                return false;
            }
        }
    }
}
