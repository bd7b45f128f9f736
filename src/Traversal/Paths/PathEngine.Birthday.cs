using Mesh.Protos.V1;
using Mesh.WireGuard.Core;

namespace Mesh.Traversal.Paths;

/// <summary>
/// The hard-NAT technique, for a peer pair where exactly one NAT maps by destination. The hard side opens
/// many sockets and pings the easy side's public address from each, so its NAT holds many mappings toward
/// it; the easy side pings random ports of the hard side's public address at a bounded rate. Each probe
/// hits one of N open mappings with probability N/64512: 256 ports and 2048 probes find one 99.97% of the
/// time. The socket that answers becomes the hard side's path to the peer; the rest are closed.
/// </summary>
public sealed partial class PathEngine
{
    private const int LowestPort = 1024;
    private static readonly TimeSpan SocketRoundInterval = TimeSpan.FromSeconds(2);

    private void TickBirthday(PeerPaths peer, TimeSpan now)
    {
        if (peer.Birthday is { } search)
        {
            if (peer.Best is not null || now - search.Started >= Options.BirthdayDuration)
            {
                if (peer.Best is null) peer.LastFailure = $"the hard-NAT search found no open port in {Options.BirthdayDuration.TotalSeconds:0}s";
                EndBirthday(peer, now, keepSocket: peer.Best?.Key.Socket ?? -1);
                return;
            }
            if (search.HardSide) PingFromSearchSockets(peer, search, now);
            else SprayRandomPorts(peer, search, now);
            return;
        }
        if (peer.Best is not null || !Options.HardNatTechnique || _udpBlocked || peer.UdpBlocked || PortMapped(peer)) return;
        var hardSide = MyMapping == NatMapping.EndpointDependent && peer.Mapping is NatMapping.EndpointIndependent or NatMapping.None;
        var easySide = MyMapping is NatMapping.EndpointIndependent or NatMapping.None && peer.Mapping == NatMapping.EndpointDependent;
        if (!hardSide && !easySide) return;
        if (now - peer.PhaseStarted < Options.BirthdayDelay || BirthdaySearches() >= Options.MaxBirthdaySearches) return;
        if (peer.LastBirthdayEnded is { } ended && ended >= peer.PhaseStarted && now - ended < Options.UpgradeInterval) return;
        var target = easySide ? peer.PublicAddress() : null;
        if (easySide && target is null) return;
        peer.Birthday = new BirthdaySearch(hardSide, now, target);
        if (!hardSide) return;
        for (var i = 0; i < Options.BirthdaySockets; i++)
        {
            var socket = _sockets.OpenSocket();
            if (socket < 0) break;
            peer.Birthday.Sockets.Add(socket);
        }
    }

    private void PingFromSearchSockets(PeerPaths peer, BirthdaySearch search, TimeSpan now)
    {
        if (search.LastSocketRound is { } last && now - last < SocketRoundInterval) return;
        search.LastSocketRound = now;
        // The easy side's public address: its STUN candidate, or its own address when nothing translates it.
        // One address only (the first of its kind): a peer that lists many would multiply the socket rounds.
        var kind = peer.HasCandidate(CandidateKind.Stun) ? CandidateKind.Stun : CandidateKind.Local;
        foreach (var (address, candidateKind) in peer.Candidates)
        {
            if (candidateKind != kind) continue;
            // Opening packets: they make the hard NAT hold a mapping per socket, and must not reach the easy NAT,
            // where each would leave a flow that pushes the easy side's answer for that port onto another port.
            foreach (var socket in search.Sockets)
            {
                if (Options.OpeningTtl > 0) SendOpeningPacket(peer, new PathKey(socket, address));
                else SendPing(peer, new PathKey(socket, address), Technique.Birthday, now, user: false);
            }
            return;
        }
    }

    private void SprayRandomPorts(PeerPaths peer, BirthdaySearch search, TimeSpan now)
    {
        if (search.Target is not { } target) return;
        var due = (int)Math.Min(int.MaxValue, (now - search.Started).TotalSeconds * Options.BirthdayProbesPerSecond);
        // A late tick sends what it owes, but never a burst larger than a tenth of a second's worth.
        var burst = Math.Max(1, Options.BirthdayProbesPerSecond / 10);
        for (var sent = 0; search.ProbesSent < due && sent < burst; sent++, search.ProbesSent++)
        {
            var port = LowestPort + _entropy.NextInt(65536 - LowestPort);
            SendPing(peer, new PathKey(0, NetEndpoint.FromAddressBytes(target, (ushort)port)), Technique.Birthday, now, user: false);
        }
    }

    private void EndBirthday(PeerPaths peer, TimeSpan now, int keepSocket)
    {
        if (peer.Birthday is not { } search) return;
        foreach (var socket in search.Sockets)
        {
            if (socket == keepSocket) continue;
            _sockets.CloseSocket(socket);
            List<PathKey>? closed = null;
            foreach (var key in peer.Paths.Keys)
            {
                if (key.Socket == socket) (closed ??= new()).Add(key);
            }
            if (closed is not null) foreach (var key in closed) peer.Paths.Remove(key);
        }
        peer.Birthday = null;
        peer.LastBirthdayEnded = now;
    }

    private int BirthdaySearches()
    {
        var running = 0;
        foreach (var peer in _peers.Values)
        {
            if (peer.Birthday is not null) running++;
        }
        return running;
    }
}
