using Mesh.Traversal.Stun;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;

namespace Mesh.Traversal.NatDiscovery;

public sealed record NetcheckReport(NatVerdict Verdict, TimeSpan? FirstLatency, TimeSpan? SecondLatency);

/// <summary>
/// One NAT discovery run without I/O: Binding requests to the coordinator's two STUN ports from the
/// agent's one socket, resent a few times, answered or given up at a deadline. The host sends what
/// <see cref="Poll"/> asks for, feeds back STUN datagrams, and reads <see cref="Report"/> once done.
/// </summary>
public sealed class NetcheckProbe
{
    public static readonly TimeSpan Retransmit = TimeSpan.FromMilliseconds(250);
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(3);

    private readonly Server[] _servers;
    private readonly IReadOnlyCollection<NetEndpoint> _local;
    private readonly TimeSpan _started;

    public NetcheckProbe(NetEndpoint first, NetEndpoint second, IReadOnlyCollection<NetEndpoint> localEndpoints, TimeSpan now, IEntropy entropy)
    {
        _local = localEndpoints;
        _started = now;
        _servers = [new Server(first, entropy), new Server(second, entropy)];
    }

    public bool IsDone { get; private set; }
    public NetcheckReport? Report { get; private set; }

    /// <summary>Writes the next request due (if any) into <paramref name="output"/>; returns its length and destination, or 0 when nothing is due.</summary>
    public int Poll(TimeSpan now, Span<byte> output, out NetEndpoint destination)
    {
        destination = default;
        if (IsDone) return 0;
        if (now - _started >= Deadline || _servers.All(s => s.Mapped is not null))
        {
            Finish();
            return 0;
        }
        foreach (var server in _servers)
        {
            if (server.Mapped is not null || (server.LastSent is { } last && now - last < Retransmit)) continue;
            server.LastSent = now;
            destination = server.Endpoint;
            return StunMessage.WriteBindingRequest(output, server.TransactionId);
        }
        return 0;
    }

    /// <summary>Takes a STUN datagram; true when it answered one of this run's requests.</summary>
    public bool OnResponse(ReadOnlySpan<byte> datagram, TimeSpan now)
    {
        if (IsDone || StunMessage.Validate(datagram, stackalloc ushort[4], out _) != StunParseResult.Ok) return false;
        if (StunMessage.TypeOf(datagram) != StunMessage.BindingSuccess || !StunMessage.TryReadMappedAddress(datagram, out var mapped)) return false;
        var transaction = StunMessage.TransactionId(datagram);
        foreach (var server in _servers)
        {
            if (server.Mapped is not null || !transaction.SequenceEqual(server.TransactionId)) continue;
            server.Mapped = mapped;
            server.Latency = now - server.LastSent;
            if (_servers.All(s => s.Mapped is not null)) Finish();
            return true;
        }
        return false;
    }

    private void Finish()
    {
        IsDone = true;
        Report = new NetcheckReport(NatClassifier.Classify(_local, _servers[0].Mapped, _servers[1].Mapped), _servers[0].Latency, _servers[1].Latency);
    }

    private sealed class Server
    {
        public Server(NetEndpoint endpoint, IEntropy entropy)
        {
            Endpoint = endpoint;
            entropy.Fill(TransactionId);
        }

        public NetEndpoint Endpoint { get; }
        public byte[] TransactionId { get; } = new byte[StunMessage.TransactionIdSize];
        public TimeSpan? LastSent { get; set; }
        public NetEndpoint? Mapped { get; set; }
        public TimeSpan? Latency { get; set; }
    }
}
