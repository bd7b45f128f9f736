using Mesh.Protos.V1;
using Mesh.Traversal.Probes;
using Mesh.Traversal.Relay;
using Mesh.WireGuard.Core;

namespace Mesh.Traversal.Paths;

/// <summary>Probing: rounds to every candidate, pongs that validate paths, heartbeats, choosing and dropping the direct path.</summary>
public sealed partial class PathEngine
{
    /// <summary>A path is dead only after this many pings in a row went unanswered: 20% loss each way must not look like death.</summary>
    private const int DeadPings = 5;

    private void OnProbe(ReadOnlySpan<byte> datagram, int socket, NetEndpoint from, RelayLink? via, TimeSpan now)
    {
        var result = _probes.TryRead(datagram, key => _peers.ContainsKey(NodeKeyId.From(key)), out var probe);
        if (result != ProbeResult.Ok)
        {
            Reject(result);
            return;
        }
        var peer = _peers[NodeKeyId.From(probe.Sender)];
        if (probe.Type == ProbeType.Ping) OnPing(peer, probe.TransactionId, socket, from, via, now);
        else OnPong(peer, probe.TransactionId, socket, from, via, now);
    }

    private void OnPing(PeerPaths peer, UInt128 transaction, int socket, NetEndpoint from, RelayLink? via, TimeSpan now)
    {
        var length = _probes.WritePong(_scratch, peer.Key, transaction, via is null ? from : default);
        if (via is not null)
        {
            peer.LastRelayHeard = via.Id;
            SendViaRelay(via, OverStream(via), peer.Key.Span, _scratch.AsSpan(0, length));
            // A peer with a working direct path would not ping through a relay: it has lost it (its network
            // changed). Until our direct path answers again, the relay carries a copy of everything.
            if (peer.Best is { } best)
            {
                Volatile.Write(ref peer.ConfirmedUntilTicks, 0);
                SendPing(peer, best.Key, best.Technique, now, user: false);
            }
            return;
        }
        _sockets.SendUdp(socket, _scratch.AsSpan(0, length), from);
        var key = new PathKey(socket, from);
        if (peer.Paths.ContainsKey(key)) return;
        var technique = peer.TechniqueOf(key);
        if (technique == Technique.PeerReflexive && socket == 0 && peer.CountPeerReflexive() < MaxPeerReflexive)
        {
            peer.Candidates[from] = CandidateKind.PeerReflexive;
        }
        // A peer that pings from an address it never used may have moved (a laptop's new network): as for a ping
        // through a relay, the relay carries a copy of everything until our direct path answers again.
        if (peer.Best is { } current && current.Key.Remote != from)
        {
            Volatile.Write(ref peer.ConfirmedUntilTicks, 0);
            SendPing(peer, current.Key, current.Technique, now, user: false);
        }
        // The other side reached us from an address we never pinged: ping it back so both ends validate the path.
        SendPing(peer, key, technique, now, user: false);
    }

    private void OnPong(PeerPaths peer, UInt128 transaction, int socket, NetEndpoint from, RelayLink? via, TimeSpan now)
    {
        if (!_pending.Remove(transaction, out var pending) || pending.Peer != peer)
        {
            Reject(ProbeResult.Malformed);
            return;
        }
        var latency = now - pending.SentAt;
        if (via is not null)
        {
            peer.LastRelayHeard = via.Id;
            peer.RelayLatency = latency;
            if (pending.User) _pingReplies[transaction] = new PingReply(PathKind.Relay, null, via.Id, latency);
            return;
        }
        var key = new PathKey(socket, from);
        if (!peer.Paths.TryGetValue(key, out var path))
        {
            path = new PathState(key, pending.Technique == Technique.None ? peer.TechniqueOf(key) : pending.Technique);
            peer.Paths[key] = path;
        }
        path.Answered(now, latency);
        if (pending.User) _pingReplies[transaction] = new PingReply(PathKind.Direct, from, null, latency);
        Reselect(peer, now);
    }

    /// <summary>A ping that only opens this side's NAT mapping toward <paramref name="key"/>: nobody is meant to answer it.</summary>
    private void SendOpening(PeerPaths peer, PathKey key, TimeSpan now)
    {
        if (WithinBudget(peer, now)) SendOpeningPacket(peer, key);
    }

    /// <summary>An opening packet outside the peer's budget: the hard-NAT search's, which its own rate bounds.</summary>
    private void SendOpeningPacket(PeerPaths peer, PathKey key)
    {
        var length = _probes.WritePing(_scratch, peer.Key, NewTransaction());
        _sockets.SendUdp(key.Socket, _scratch.AsSpan(0, length), key.Remote, Options.OpeningTtl);
    }

    /// <summary>Whether one more probe may go toward the peer: the birthday search's are bounded by its own rate instead.</summary>
    private bool WithinBudget(PeerPaths peer, TimeSpan now)
    {
        if (peer.Budget.TryTake(now)) return true;
        Interlocked.Increment(ref _probesOverBudget);
        return false;
    }

    private UInt128? SendPing(PeerPaths peer, PathKey key, Technique technique, TimeSpan now, bool user)
    {
        if (_pending.Count >= MaxPendingPings) return null;
        if (technique != Technique.Birthday && !WithinBudget(peer, now)) return null;
        var transaction = NewTransaction();
        var length = _probes.WritePing(_scratch, peer.Key, transaction);
        _pending[transaction] = new PendingPing(peer, key, technique, null, now, user);
        if (peer.Paths.TryGetValue(key, out var path)) path.Pinged(now);
        _sockets.SendUdp(key.Socket, _scratch.AsSpan(0, length), key.Remote);
        return transaction;
    }

    private UInt128? SendRelayPing(PeerPaths peer, RelayLink relay, bool overStream, TimeSpan now, bool user)
    {
        if (_pending.Count >= MaxPendingPings) return null;
        var transaction = NewTransaction();
        var length = _probes.WritePing(_scratch, peer.Key, transaction);
        _pending[transaction] = new PendingPing(peer, default, Technique.None, relay, now, user);
        peer.LastRelayPing = now;
        SendViaRelay(relay, overStream, peer.Key.Span, _scratch.AsSpan(0, length));
        return transaction;
    }

    /// <summary>Pings every candidate; the peer's public address (STUN's view) gets an opening packet, and a ping only once <see cref="PeerPaths.PublicPingsFrom"/> has come.</summary>
    private void SendProbeRound(PeerPaths peer, TimeSpan now)
    {
        foreach (var (address, kind) in peer.Candidates)
        {
            var key = new PathKey(0, address);
            if (kind == CandidateKind.Stun && Options.OpeningTtl > 0)
            {
                SendOpening(peer, key, now);
                if (now < peer.PublicPingsFrom) continue;
            }
            SendPing(peer, key, peer.TechniqueOf(key), now, user: false);
        }
    }

    private void TickPeer(PeerPaths peer, TimeSpan now)
    {
        // The coordinator's word that a peer is offline yields to evidence: a path the peer still answers on is
        // kept (and pinged) for as long as it does. A coordinator replica that just took over knows every peer
        // as offline until the peer's replica reports it, and tunnels must not wait for that.
        if (!peer.Online && !Answering(peer, now))
        {
            UpdateRoute(peer, now);
            return;
        }
        DropDeadPath(peer, now);
        if (peer.Best is { } best)
        {
            // Once the path is unconfirmed, pings come four times as often: a lossy path is told from a dead one sooner.
            var interval = now.Ticks < Volatile.Read(ref peer.ConfirmedUntilTicks) ? Options.HeartbeatInterval : Options.HeartbeatInterval / 4;
            if (peer.IsActive(now, Options.ActiveWindow))
            {
                if (best.LastPingSent is not { } sent || now - sent >= interval) SendPing(peer, best.Key, best.Technique, now, user: false);
                RecheckOtherPaths(peer, best, now);
            }
        }
        else if (peer.NextProbe is { } due && now >= due)
        {
            var age = now - peer.PhaseStarted;
            if (age >= Options.ProbePhase || BothHard(peer) && age >= Options.FastProbePhase)
            {
                // Quiet since the last round for longer than NATs keep unanswered flows: start over, in step with the peer.
                StartPhase(peer, now, requestConnect: true);
            }
            else
            {
                SendProbeRound(peer, now);
                var interval = age < Options.FastProbePhase ? Options.FastProbeInterval : Options.ProbeInterval;
                if (BothHard(peer) || age + interval >= Options.ProbePhase) interval = Options.UpgradeInterval;
                peer.NextProbe = now + interval;
                if (age >= Options.FastProbePhase) RequestConnect(peer, now, force: false);
            }
        }
        TickBirthday(peer, now);
        var route = peer.Route;
        if (peer.Best is null && route.Relay is { } relay && relay.Client.IsAlive(now) && peer.IsActive(now, Options.ActiveWindow)
            && (peer.LastRelayPing is not { } ping || now - ping >= RelayPingInterval))
        {
            SendRelayPing(peer, relay, route.RelayOverStream, now, user: false);
        }
        peer.Prune(now, Options.UpgradeInterval);
        UpdateRoute(peer, now);
    }

    /// <summary>
    /// While traffic flows, the paths not chosen stay measured (a ping every <see cref="PathOptions.ProbeInterval"/>)
    /// and every candidate is tried again each <see cref="PathOptions.UpgradeInterval"/>: a path that became better
    /// (a LAN that came back, a lossy uplink) is taken without waiting for the chosen one to die.
    /// </summary>
    private void RecheckOtherPaths(PeerPaths peer, PathState best, TimeSpan now)
    {
        foreach (var path in peer.Paths.Values)
        {
            if (path == best || path.LastPingSent is { } sent && now - sent < Options.ProbeInterval) continue;
            SendPing(peer, path.Key, path.Technique, now, user: false);
        }
        if (now - (peer.LastUpgradeRound ?? peer.DirectSince ?? now) < Options.UpgradeInterval) return;
        peer.LastUpgradeRound = now;
        SendProbeRound(peer, now);
    }

    /// <summary>A chosen path whose pings have gone unanswered for <see cref="PathOptions.DeadAfter"/> is dropped; probing starts again.</summary>
    private void DropDeadPath(PeerPaths peer, TimeSpan now)
    {
        if (peer.TakeDeadBest(now, Options.DeadAfter, DeadPings) is not { } dead) return;
        peer.LastFailure = $"the direct path to {dead.Key.Remote} stopped answering";
        _portMap.Refresh(now);
        Reselect(peer, now);
        if (peer.Best is null) StartPhase(peer, now, requestConnect: true);
    }

    /// <summary>The peer's best path now (<see cref="PeerPaths.Choose"/>) carries its traffic; none answering keeps the current one.</summary>
    private void Reselect(PeerPaths peer, TimeSpan now)
    {
        var choice = peer.Choose(now, Options.TrustWindow);
        var current = peer.Best;
        if (choice is null)
        {
            if (current is not null) return;
            UpdateRoute(peer, now);
            return;
        }
        if (choice != current)
        {
            peer.Best = choice;
            peer.DirectSince ??= now;
            peer.LastFailure = null;
        }
        if (peer.Birthday is not null) EndBirthday(peer, now, keepSocket: choice.Key.Socket);
        Volatile.Write(ref peer.ConfirmedUntilTicks, (choice.LastPong!.Value + Options.TrustWindow).Ticks);
        UpdateRoute(peer, now);
    }

    private static bool Answering(PeerPaths peer, TimeSpan now) => now.Ticks < Volatile.Read(ref peer.ConfirmedUntilTicks);

    private void UpdateRoute(PeerPaths peer, TimeSpan now)
    {
        var direct = peer.Online || Answering(peer, now) ? peer.Best?.Key : null;
        var relay = peer.Online ? RelayFor(peer, now) : null;
        var overStream = relay is not null && OverStream(relay);
        var current = peer.Route;
        if (current.Direct == direct && current.Relay == relay && current.RelayOverStream == overStream) return;
        peer.Route = new Route(direct, relay, overStream);
        Interlocked.Increment(ref peer.RouteGeneration);
    }

    private bool BothHard(PeerPaths peer) => MyMapping == NatMapping.EndpointDependent && peer.Mapping == NatMapping.EndpointDependent && !PortMapped(peer);

    /// <summary>A router mapped a port on one side: the other side's probes reach it however its own NAT maps.</summary>
    private bool PortMapped(PeerPaths peer) => MappedExternal is not null || peer.HasCandidate(CandidateKind.Portmap);

    /// <summary>Why the peer is not on a direct path, in words for `mesh-agent status`.</summary>
    private string WhyNotDirect(PeerPaths peer, TimeSpan now, RelayLink? relay)
    {
        if (!peer.Online) return "the peer is offline";
        var via = relay is null ? "and no relay is reachable" : $"so traffic goes through relay {relay.Id}";
        if (_udpBlocked) return $"UDP is blocked on this network, {via} over TCP";
        if (peer.UdpBlocked) return $"UDP is blocked on the peer's network, {via}";
        if (BothHard(peer)) return $"both NATs map by destination (random source ports): hole punching cannot work, {via}";
        if (peer.Birthday is { } search)
        {
            return search.HardSide
                ? $"hard NAT here: {search.Sockets.Count} ports open for the hard-NAT search ({(now - search.Started).TotalSeconds:0}s so far), {via}"
                : $"the peer's NAT maps by destination: searching its ports ({search.ProbesSent} probes so far), {via}";
        }
        if (peer.Candidates.Count == 0) return $"the peer has published no candidates yet, {via}";
        if (peer.LastFailure is { } failure) return $"{failure}; probing again, {via}";
        if (!Options.HardNatTechnique && (MyMapping == NatMapping.EndpointDependent || peer.Mapping == NatMapping.EndpointDependent))
        {
            return $"one NAT maps by destination and the hard-NAT technique is off, {via}";
        }
        return $"no probe has been answered yet (a firewall or filtering NAT drops them), {via}";
    }
}
