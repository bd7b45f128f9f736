using Google.Protobuf;
using Mesh.Control;
using Mesh.Coordinator.Control;
using Mesh.Coordinator.Store;
using Mesh.Protos.V1;
using Mesh.Transport;
using Mesh.WireGuard.Keys;
using Microsoft.Extensions.Logging;

namespace Mesh.Coordinator.Sync;

/// <summary>What a hub needs of the mesh: the registry to check tokens, the publisher for streams (grains in a silo, direct in the NAT lab).</summary>
public interface IMeshPort
{
    Task<Result<NodeRecord>> AuthenticateAsync(string sessionToken);

    /// <summary>Attaches (again) with the hub's relay and open streams; returns the current full map and the deltas since.</summary>
    Task<SessionStart> AttachAsync(string hubId, IHubLink link, Relay? relay, IReadOnlyList<OpenStream> streams);

    Task<Result<SessionStart>> OpenSessionAsync(string hubId, NodeRecord node, byte[] endpoints, ulong lastSerial);

    void UpdateEndpoints(long nodeId, string hubId, byte[] endpoints);

    void CloseSession(long nodeId, string hubId, DateTime now);

    Task<bool> RequestConnectionAsync(long fromNodeId, byte[] peerKey);
}

/// <summary>
/// The sync streams connected to this replica: it opens them through the registry and the publisher, hands every
/// delta the publisher sends to all of them as one message (serialized once, by the publisher; with a policy, or to an
/// agent that reads whole records, as a cut made once per kind of node), delivers connect notices and ends streams it
/// is told to. It keeps a copy of the map, which is what streams start from and what this replica's relay serves.
/// Thread-safe.
/// </summary>
/// <param name="synchronousSends">A stream's writer runs on the thread that queues to it rather than a reader's: the NAT lab's one thread.</param>
public sealed class SyncHub(string hubId, IMeshPort mesh, TimeProvider time, ILogger logger, bool synchronousSends = false) : IHubLink
{
    private readonly object _lock = new();
    private readonly Dictionary<long, SyncSession> _sessions = new();
    private readonly MapViews _views = new();
    private ulong _serial;
    private ulong _epoch;
    private bool _started;
    private TaskCompletionSource? _attaching;
    private TaskCompletionSource? _nextAttach;

    public string HubId { get; } = hubId;

    /// <summary>This replica's relay as agents are told of it, or null: given by <see cref="StartAsync"/>.</summary>
    public Relay? Relay { get; private set; }

    public int Count
    {
        get
        {
            lock (_lock) return _sessions.Count;
        }
    }

    /// <summary>
    /// The first attach, with this replica's relay as agents are told of it (or null): its address is known only
    /// once the host listens, after the hub was made. Once only.
    /// </summary>
    public Task StartAsync(Relay? relay)
    {
        lock (_lock)
        {
            if (_started) throw new InvalidOperationException("The hub has started already.");
            _started = true;
            Relay = relay;
        }
        return AttachAsync();
    }

    /// <summary>
    /// Tells the publisher this hub is here (again), with its relay and open streams, and takes the current map.
    /// Deltas come as one-way messages, which a publisher that moves or a hub it detached for a moment can lose:
    /// whatever this hub's streams missed reaches them here, from what the attach returned (the deltas after the
    /// hub's serial, or the full map when those are gone or the publisher is another activation than the one the hub
    /// followed). A stream that was open before the attach and whose node the map no longer holds (expired, deleted,
    /// revoked while the message to end it was lost) ends here: revocations and presence rest on the map, not on a
    /// message. Calls that overlap share attaches: one in flight, and one more after it for those that came during it
    /// (what they wait for may have happened after the first one's map).
    /// </summary>
    public Task AttachAsync()
    {
        TaskCompletionSource round;
        lock (_lock)
        {
            if (_attaching is not null) return (_nextAttach ??= new TaskCompletionSource()).Task;
            round = _attaching = new TaskCompletionSource();
        }
        _ = AttachRoundsAsync(round);
        return round.Task;
    }

    /// <summary>Runs attach rounds until none is asked for: each caller's round starts after its call, and ends its own task.</summary>
    private async Task AttachRoundsAsync(TaskCompletionSource round)
    {
        while (true)
        {
            Exception? failure = null;
            try
            {
                await AttachNowAsync().ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                failure = ex;
            }
            TaskCompletionSource? next;
            lock (_lock)
            {
                next = _nextAttach;
                _nextAttach = null;
                _attaching = next;
            }
            if (failure is null) round.SetResult();
            else round.SetException(failure);
            if (next is null) return;
            round = next;
        }
    }

    private async Task AttachNowAsync()
    {
        List<OpenStream> streams;
        List<SyncSession> opened;
        lock (_lock)
        {
            streams = _sessions.Values.Select(s => new OpenStream(s.Node, s.Endpoints)).ToList();
            opened = _sessions.Values.Where(s => s.Early is null).ToList();
        }
        var start = await mesh.AttachAsync(HubId, this, Relay, streams).ConfigureAwait(false);
        var full = SyncResponse.Parser.ParseFrom(start.FullMap).Full;
        // Who is in the mesh at the start's serial: a stream whose node is not ends, whether or not the hub's copy
        // is reset to this map (a hub that missed nothing keeps its copy, and a lost delta or message that removed
        // the node would leave it there).
        var members = new HashSet<long>(full.Peers.Count);
        foreach (var peer in full.Peers) members.Add((long)peer.NodeId);
        List<SyncSession> gone;
        lock (_lock)
        {
            var otherPublisher = start.Epoch != _epoch;
            // A delta applied while this attach was under way leaves the hub ahead of the attach's map: its peers stand.
            var takePeers = otherPublisher || start.Serial >= _serial;
            var fromMap = otherPublisher || _serial < full.Serial;
            // A hub that only missed a few deltas of the same publisher applies just those to its copy and sends them on
            // (cut for each kind of node with a policy), as they would have come: a new map for every stream at each
            // catch-up (one-way messages overtake each other under load) was gigabytes at 10,000 streams.
            var cuts = takePeers && !fromMap && _views.PerNode == full.PerNode ? new List<DeltaCut>() : null;
            if (takePeers && cuts is null) _views.Reset(full);
            // The shared map may be a few changes old: the deltas since bring the peers up to date.
            var deltas = new List<(ulong Serial, byte[] Bytes)>(start.Deltas.Count);
            foreach (var bytes in start.Deltas)
            {
                var delta = SyncResponse.Parser.ParseFrom(bytes).Delta;
                foreach (var peer in delta.PeersChanged) members.Add((long)peer.NodeId);
                foreach (var id in delta.PeersRemoved) members.Remove((long)id);
                if (cuts is not null)
                {
                    if (delta.Serial > _serial) cuts.Add(_views.Apply(delta));
                }
                else if (takePeers) _views.Apply(delta);
                deltas.Add((delta.Serial, bytes));
            }
            if (otherPublisher || _serial < start.Serial) Repair(deltas, start.Serial, start.Epoch, fromMap, cuts);
            _epoch = start.Epoch;
            // A stream that waited for its node's record or for the hub to catch up takes its map now, and so does one
            // whose map is of the other mode than the map this attach took (a policy came or went meanwhile, and the
            // delta that said so may find the hub in its new mode already).
            foreach (var session in _sessions.Values)
            {
                if (session.Early is null && (session.AwaitingMap || (session.SentPerNode is { } sent && sent != _views.PerNode))) SendMap(session);
            }
            // A hub ahead of the start has newer deltas than it, which may add nodes: its copy says who is in.
            gone = opened.Where(s => takePeers ? !members.Contains(s.NodeId) : !_views.Contains(s.NodeId)).ToList();
        }
        foreach (var session in gone) EndRemoved(session);
    }

    /// <summary>
    /// The hub is behind the publisher: its open streams get the deltas after the hub's serial (<paramref name="cuts"/>
    /// of them where the stream does not share the publisher's), or a new map from the hub's copy when that was reset
    /// (the hub was behind the map itself, followed another publisher, or another mode; agents take a full map as a
    /// fresh start, and drop any delta they have). A stream still starting takes the deltas among its early messages,
    /// where its start's serial sorts out which it needs. The caller holds the lock.
    /// </summary>
    private void Repair(List<(ulong Serial, byte[] Bytes)> deltas, ulong serial, ulong epoch, bool fromMap, List<DeltaCut>? cuts)
    {
        var missed = new List<(ulong Serial, SyncResponse Handle)>();
        foreach (var (deltaSerial, bytes) in deltas)
        {
            if (fromMap || deltaSerial > _serial) missed.Add((deltaSerial, Handle(bytes)));
        }
        foreach (var session in _sessions.Values)
        {
            if (session.Early is { } early)
            {
                foreach (var (deltaSerial, handle) in missed) early.Add((epoch, deltaSerial, handle));
                continue;
            }
            if (cuts is null) SendMap(session);
            else if (SharesDeltas(session)) foreach (var (_, handle) in missed) session.Enqueue(handle);
            else foreach (var cut in cuts) SendSlice(session, cut);
        }
        if (_sessions.Count > 0 && _serial > 0) logger.LogInformation("Caught {Count} streams up from serial {From} to {To}{Map}", _sessions.Count, _serial, serial, fromMap ? " with the full map" : "");
        _serial = serial;
    }

    /// <summary>The node of an open stream left the map: its stream ends, as the registry's message would have ended it.</summary>
    private void EndRemoved(SyncSession session)
    {
        if (!Forget(session)) return;
        logger.LogInformation("Ending the sync stream of {Name}: it is no longer in the mesh", session.Node.Name);
        session.Close(Problem.Unauthenticated("The node is no longer in the mesh (expired, deleted or revoked); register again."));
    }

    /// <summary>Whether the key belongs to a peer of the mesh: this replica's relay serves only those.</summary>
    /// <remarks>Without the hub's lock: the relay asks for every frame, and the lock is held while maps are cut.</remarks>
    public bool IsMember(PublicKey key) => _views.IsMember(key);

    /// <summary>Opens an agent's stream: authenticates its token, and queues a full map (or the deltas it missed).</summary>
    /// <param name="nodeKey">The key the hello proved: the token must be that node's.</param>
    public async Task<Result<SyncSession>> OpenAsync(string sessionToken, PublicKey nodeKey, SyncHello hello, IReadOnlyList<string> stunServers)
    {
        var node = await mesh.AuthenticateAsync(sessionToken).ConfigureAwait(false);
        if (!node.Ok) return node.Problem!;
        if (!nodeKey.Span.SequenceEqual(node.Value!.NodeKey)) return Problem.Unauthenticated("The session token belongs to another node key.");
        var endpoints = (hello.Endpoints ?? new Endpoints()).ToByteArray();
        var form = hello.MapForm == MapForm.Compact ? MapForm.Compact : MapForm.Records;
        var session = new SyncSession(node.Value!, stunServers, form, synchronousSends) { Endpoints = endpoints };
        SyncSession? replaced;
        lock (_lock)
        {
            _sessions.Remove(session.NodeId, out replaced);
            _sessions[session.NodeId] = session;
        }
        replaced?.Close(new Problem(Failure.Aborted, "Replaced by a newer stream of the same node."));
        Result<SessionStart> start;
        try
        {
            start = await mesh.OpenSessionAsync(HubId, session.Node, endpoints, hello.LastSerial).ConfigureAwait(false);
            if (start.Problem?.Kind == Failure.Detached)
            {
                // The publisher moved (its replica died) and has not heard from this hub since: attach now rather
                // than at the next round, so agents failing over from that replica are taken at once.
                await AttachAsync().ConfigureAwait(false);
                start = await mesh.OpenSessionAsync(HubId, session.Node, endpoints, hello.LastSerial).ConfigureAwait(false);
            }
        }
        catch
        {
            // A stream that never started must not stay: its early messages would grow, and attaches would report it open.
            Forget(session);
            throw;
        }
        if (!start.Ok)
        {
            Forget(session);
            return start.Problem!;
        }
        var catchUp = false;
        lock (_lock)
        {
            if (!start.Value!.Resumes || _views.PerNode || form == MapForm.Records)
            {
                // A stream that does not resume starts from the hub's copy of the map, which holds every delta the early
                // list does. A hub whose copy is in another mode than the publisher's is behind: it catches up, and
                // the stream gets its map then. An agent that reads whole records does not resume: the deltas it
                // missed are the publisher's, of presence by id.
                if (start.Value.PerNode == _views.PerNode || _views.Serial >= start.Value.Serial) SendMap(session);
                else (session.AwaitingMap, catchUp) = (true, true);
                foreach (var (epoch, _, message) in session.Early!)
                {
                    if (epoch == 0 && !session.AwaitingMap) session.Enqueue(message);
                }
                session.Early = null;
            }
        }
        if (catchUp) _ = CatchUpAsync(start.Value.Serial);
        if (session.Early is null) return session;
        foreach (var delta in start.Value.Deltas) session.Enqueue(Handle(delta));
        lock (_lock)
        {
            // Deltas of another publisher than the start's are not in its serials: the hub's next attach to the
            // start's publisher repairs this stream with the rest.
            foreach (var (epoch, serial, message) in session.Early!)
            {
                if (serial > start.Value.Serial && (epoch == 0 || epoch == start.Value.Epoch)) session.Enqueue(message);
            }
            session.Early = null;
            session.SentPerNode = false;
            // A delta that turned per-node maps on while the start was queued was not among the early messages.
            if (_views.PerNode) SendMap(session);
        }
        return session;
    }

    public void UpdateEndpoints(SyncSession session, Endpoints endpoints)
    {
        if (!IsCurrent(session)) return;
        session.Endpoints = endpoints.ToByteArray();
        mesh.UpdateEndpoints(session.NodeId, HubId, session.Endpoints);
    }

    /// <summary>Asks the peer with this key, wherever its stream is, to probe the session's node now.</summary>
    public async Task<bool> RequestConnectionAsync(SyncSession session, ByteString peerKey)
    {
        if (!IsCurrent(session) || peerKey.Length != Key32.Size) return false;
        // The publisher resolves the key: this replica may not have seen the peer's delta yet.
        return await mesh.RequestConnectionAsync(session.NodeId, peerKey.ToByteArray()).ConfigureAwait(false);
    }

    /// <summary>The agent's stream ended (it went away, or the coordinator ended it).</summary>
    public void Close(SyncSession session)
    {
        session.Close(null);
        if (Forget(session)) mesh.CloseSession(session.NodeId, HubId, time.GetUtcNow().UtcDateTime);
    }

    /// <summary>Ends every stream of this replica, as it stops.</summary>
    public void CloseAll(Problem reason)
    {
        List<SyncSession> all;
        lock (_lock)
        {
            all = _sessions.Values.ToList();
            _sessions.Clear();
        }
        foreach (var session in all) session.Close(reason);
    }

    /// <summary>
    /// A delta from the publisher. Serials are consecutive, and one-way messages can arrive out of order: a delta
    /// past a gap is not applied (the hub's serial would pass the missing one, which no attach would then bring),
    /// but starts an attach at once, which brings every delta after the hub's serial in order. A delta is queued to
    /// the streams under the lock that advanced the serial: two deltas applied on two threads (or one and an
    /// attach's repair) must reach each stream in serial order, or the agent drops the one that comes second.
    /// </summary>
    public void Publish(byte[] message)
    {
        var delta = SyncResponse.Parser.ParseFrom(message).Delta;
        var handle = new SyncResponse();
        ServiceDefinitions.Remember(handle, message);
        List<SyncSession>? removed = null;
        lock (_lock)
        {
            if (delta.Serial <= _serial)
            {
                // Seen, or a delta of a publisher whose serials are lower than the one this hub followed (another
                // activation): an attach under way may have taken that publisher's map before this delta.
                if (_attaching is not null) _nextAttach ??= new TaskCompletionSource();
                return;
            }
            if (_serial != 0 && delta.Serial != _serial + 1)
            {
                _ = CatchUpAsync(delta.Serial);
                return;
            }
            _serial = delta.Serial;
            var cut = _views.Apply(delta);
            foreach (var session in _sessions.Values)
            {
                if (session.Early is { } early)
                {
                    // A stream that starts with a policy takes the hub's copy of the map, which has this delta.
                    if (!_views.PerNode) early.Add((_epoch, delta.Serial, handle));
                }
                else if (SharesDeltas(session)) session.Enqueue(handle);
                else SendSlice(session, cut);
            }
            foreach (var id in delta.PeersRemoved)
            {
                if (_sessions.TryGetValue((long)id, out var leaving) && leaving.Early is null) (removed ??= new()).Add(leaving);
            }
        }
        if (removed is not null) foreach (var session in removed) EndRemoved(session);
    }

    /// <summary>Attaches again to take the deltas a gap before <paramref name="serial"/> left out.</summary>
    private async Task CatchUpAsync(ulong serial)
    {
        try
        {
            await Task.Yield();
            await AttachAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            logger.LogWarning("Delta {Serial} came before one it follows, and catching up failed: {Message}; the next attach will", serial, ex.Message);
        }
    }

    public void Connect(long nodeId, byte[] message)
    {
        var notice = SyncResponse.Parser.ParseFrom(message);
        SyncSession? session;
        lock (_lock)
        {
            if (!_sessions.TryGetValue(nodeId, out session)) return;
            if (session.Early is { } early)
            {
                early.Add((0, ulong.MaxValue, notice));
                return;
            }
        }
        session.Enqueue(notice);
    }

    public void EndSession(long nodeId, Problem reason)
    {
        SyncSession? session;
        lock (_lock) _sessions.Remove(nodeId, out session);
        if (session is null) return;
        logger.LogInformation("Ending the sync stream of {Name}: {Reason}", session.Node.Name, reason.Message);
        session.Close(reason);
    }

    private bool IsCurrent(SyncSession session)
    {
        lock (_lock) return session.CloseReason is null && _sessions.TryGetValue(session.NodeId, out var current) && current == session;
    }

    private bool Forget(SyncSession session)
    {
        lock (_lock)
        {
            if (!_sessions.TryGetValue(session.NodeId, out var current) || current != session) return false;
            _sessions.Remove(session.NodeId);
            return true;
        }
    }

    /// <summary>
    /// Whether the stream takes the publisher's deltas as they came: without a policy, on the shared map, in the compact
    /// form they are in. The caller holds the lock.
    /// </summary>
    private bool SharesDeltas(SyncSession session) => !_views.PerNode && session.Form == MapForm.Compact && session.SentPerNode == false && !session.AwaitingMap;

    /// <summary>
    /// A stream's part of a delta, cut from the hub's copy: what its kind of node sees, in its form, and with a policy
    /// its own record when more than its presence changed. A policy that turns per-node maps on or off, grants of its
    /// own that changed (it sees other peers now), or a stream still waiting for its node's record get a new map. The
    /// caller holds the lock.
    /// </summary>
    private void SendSlice(SyncSession session, DeltaCut cut)
    {
        var changedSelf = cut.ChangedById.TryGetValue(session.NodeId, out var self);
        var regranted = _views.PerNode && changedSelf && (self.Old is null || !self.Old.Grants.Equals(self.Current.Grants));
        if (session.SentPerNode != _views.PerNode || session.AwaitingMap || regranted)
        {
            SendMap(session);
            return;
        }
        var node = _views.Find(session.NodeId);
        if (_views.PerNode && node is null) return;
        if (_views.DeltaFor(_views.GrantsOf(node), cut, session.Form) is { } slice) session.Enqueue(slice);
        if (_views.PerNode && changedSelf && self.Presence is null) session.Enqueue(MapViews.SelfFor(node!));
    }

    /// <summary>
    /// A stream's map from the hub's copy: its slice and its own record with a policy, everything without one. A node
    /// whose record has not reached the hub yet (it registered a moment ago) waits for it: its grants decide its slice;
    /// so does every stream until the hub's first attach has brought it a copy. The caller holds the lock.
    /// </summary>
    private void SendMap(SyncSession session)
    {
        var node = _views.Find(session.NodeId);
        // Before its first attach the hub has no copy to start from (streams are taken while it attaches).
        if (_epoch == 0 || (_views.PerNode && node is null))
        {
            session.AwaitingMap = true;
            return;
        }
        session.AwaitingMap = false;
        session.SentPerNode = _views.PerNode;
        var messages = new List<SyncResponse>();
        _views.FullMapFor(_views.GrantsOf(node), session.StunServers, session.Form, messages);
        foreach (var message in messages) session.Enqueue(message);
        if (_views.PerNode) session.Enqueue(MapViews.SelfFor(node!));
    }

    /// <summary>A delta as a handle that sends its bytes as they came: serialized once, by the publisher.</summary>
    private static SyncResponse Handle(byte[] message)
    {
        var handle = new SyncResponse();
        ServiceDefinitions.Remember(handle, message);
        return handle;
    }
}
