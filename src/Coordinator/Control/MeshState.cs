using System.Net;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Mesh.Control;
using Mesh.Coordinator.Store;
using Mesh.Protos.V1;
using Mesh.WireGuard.Keys;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.Coordinator.Control;

public sealed class MeshOptions
{
    public IPNetwork Ipv4Prefix { get; init; } = IPNetwork.Parse("100.64.0.0/10");

    /// <summary>Null: a random ULA /48 chosen at first start and kept in the database.</summary>
    public IPNetwork? Ipv6Prefix { get; init; }

    /// <summary>How long an ephemeral node may stay offline before it is removed.</summary>
    public TimeSpan EphemeralTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>How many recent changes are kept so reconnecting agents can resume instead of taking a full map.</summary>
    public int ChangeHistory { get; init; } = 8192;

    public TimeSpan ChallengeLifetime { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Changes within this window go out as one delta: a storm of agents coming online is a few deltas, not
    /// one per agent. Zero publishes every change at once.
    /// </summary>
    public TimeSpan ChangeBatchWindow { get; init; } = TimeSpan.FromMilliseconds(20);
}

/// <summary>
/// The coordinator's view of the mesh, kept in memory and written through to the store: registration,
/// addresses, sync sessions with full maps then deltas, connection requests, and what admins may change.
/// Every change becomes one delta object with a new serial, handed to each open session as it is, so the
/// cost of a change grows with the number of agents that must hear of it.
/// </summary>
public sealed class MeshState : IDisposable
{
    private readonly CoordinatorStore _store;
    private readonly MeshOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private readonly Dictionary<long, NodeEntry> _nodes = new();
    private readonly Dictionary<PublicKey, NodeEntry> _byKey = new();
    private readonly Dictionary<string, NodeEntry> _bySession = new();
    private readonly Dictionary<string, DateTimeOffset> _challenges = new();
    private readonly Dictionary<string, PreAuthKeyRecord> _preAuthKeys;
    private readonly Dictionary<string, ApiKeyRecord> _apiKeys;
    private readonly Queue<(ulong Serial, SyncResponse Delta)> _history = new();
    private readonly AddressAllocator _addresses;
    private const int FullMapRebuildChanges = 256;
    private readonly Dictionary<long, NodeEntry> _pendingChanged = new();
    private readonly HashSet<ulong> _pendingRemoved = new();
    private ITimer? _publishTimer;
    private ulong _serial;
    private SyncResponse? _fullMap;
    private ulong _fullMapSerial;
    private string? _fullMapStun;

    public MeshState(CoordinatorStore store, MeshOptions options, TimeProvider? time = null, ILogger? logger = null)
    {
        if (options.ChangeHistory <= FullMapRebuildChanges) throw new ArgumentException($"ChangeHistory must exceed {FullMapRebuildChanges}.", nameof(options));
        _store = store;
        _options = options;
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        CoordinatorKey = LoadOrCreateCoordinatorKey(store);
        var ipv6 = options.Ipv6Prefix ?? LoadOrCreateUlaPrefix(store);
        var counter = store.GetMeta("address_counter") is { } bytes ? BitConverter.ToInt64(bytes) : 1;
        _addresses = new AddressAllocator(options.Ipv4Prefix, ipv6, counter);
        foreach (var record in store.LoadNodes()) Add(new NodeEntry(record));
        _preAuthKeys = store.LoadPreAuthKeys().ToDictionary(k => k.Id);
        _apiKeys = store.LoadApiKeys().ToDictionary(k => k.Id);
        // Serials continue above any earlier run's: a reconnecting agent's old serial can't match a new change.
        _serial = (ulong)_time.GetUtcNow().ToUnixTimeMilliseconds() * 1000;
        Started = _time.GetUtcNow();
    }

    public PrivateKey CoordinatorKey { get; }
    public DateTimeOffset Started { get; }
    public IReadOnlyList<Relay> Relays { get; set; } = [];
    public IPNetwork Ipv6Prefix => _addresses.Ipv6Prefix;

    public ulong Serial
    {
        get
        {
            lock (_lock) return _serial;
        }
    }

    /// <summary>Whether this key belongs to an approved node: the relay serves only those.</summary>
    public bool IsApproved(PublicKey nodeKey)
    {
        lock (_lock) return _byKey.TryGetValue(nodeKey, out var node) && node.Record.State == NodeState.Approved;
    }

    public Challenge IssueChallenge()
    {
        var nonce = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (_challenges.Count > 10_000)
            {
                foreach (var expired in _challenges.Where(c => c.Value < now).Select(c => c.Key).ToList()) _challenges.Remove(expired);
            }
            _challenges[Convert.ToHexString(nonce)] = now + _options.ChallengeLifetime;
        }
        return new Challenge { CoordinatorKey = ByteString.CopyFrom(CoordinatorKey.PublicKey.Span), Nonce = ByteString.CopyFrom(nonce) };
    }

    public RegisterResponse Register(RegisterRequest request)
    {
        if (request.NodeKey.Length != Key32.Size) throw Error(StatusCode.InvalidArgument, $"node_key must be {Key32.Size} bytes, not {request.NodeKey.Length}.");
        if (request.Nonce.Length != 32) throw Error(StatusCode.InvalidArgument, "nonce must be the 32 bytes of a challenge.");
        if (request.Proof.Length != RegistrationProof.Size) throw Error(StatusCode.InvalidArgument, $"proof must be {RegistrationProof.Size} bytes.");
        if (request.Hostname.Length > 255) throw Error(StatusCode.InvalidArgument, "hostname is longer than 255 characters.");
        if (request.AuthKey.Length > 0 && Secrets.IdOf(request.AuthKey, Secrets.PreAuthKeyPrefix) is null)
        {
            throw Error(StatusCode.InvalidArgument, "auth_key is not a pre-auth key (mpk_...).");
        }
        var nodeKey = new PublicKey(request.NodeKey.Span);
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (!_challenges.Remove(Convert.ToHexString(request.Nonce.Span), out var expiry) || expiry < now)
            {
                throw Error(StatusCode.Unauthenticated, "The challenge is unknown, used or expired; ask for a new one.");
            }
            if (!RegistrationProof.Verify(CoordinatorKey, nodeKey, request.Nonce.Span, request.AuthKey, request.Hostname, request.Proof.Span))
            {
                throw Error(StatusCode.Unauthenticated, "The proof of possession of the node key does not verify.");
            }
            var key = request.AuthKey.Length > 0 ? UsablePreAuthKey(request.AuthKey, now) : null;
            return _byKey.TryGetValue(nodeKey, out var existing) ? LogIn(existing, key) : CreateNode(nodeKey, request.Hostname, key, now);
        }
    }

    /// <summary>Opens an agent's sync stream: authenticates its token, queues a full map (or the deltas it missed), and marks it online.</summary>
    public SyncSession OpenSession(string sessionToken, SyncHello hello, IReadOnlyList<string> stunServers)
    {
        lock (_lock)
        {
            if (!_bySession.TryGetValue(SessionKey(sessionToken), out var node) || node.Record.State != NodeState.Approved)
            {
                throw Error(StatusCode.Unauthenticated, "The session token is not valid (the node may be expired or deleted); register again.");
            }
            node.Session?.Close(new Status(StatusCode.Aborted, "Replaced by a newer stream of the same node."));
            node.EphemeralRemoval?.Dispose();
            node.EphemeralRemoval = null;
            var session = new SyncSession(node.Record.Id, stunServers);
            node.Session = session;
            node.Endpoints = hello.Endpoints ?? new Endpoints();
            if (!TryQueueMissedDeltas(session, hello.LastSerial))
            {
                var (map, mapSerial) = FullMap(stunServers);
                session.Enqueue(map);
                TryQueueMissedDeltas(session, mapSerial);
            }
            Changed(node);
            return session;
        }
    }

    public void UpdateEndpoints(SyncSession session, Endpoints endpoints)
    {
        lock (_lock)
        {
            if (!IsCurrent(session, out var node)) return;
            node.Endpoints = endpoints;
            Changed(node);
        }
    }

    /// <summary>Tells the peer (if it is online) that this node wants to connect now, with this node's current candidates.</summary>
    public bool RequestConnection(SyncSession session, ByteString peerKey)
    {
        lock (_lock)
        {
            if (!IsCurrent(session, out var node) || peerKey.Length != Key32.Size) return false;
            if (!_byKey.TryGetValue(new PublicKey(peerKey.Span), out var target) || target.Session is null || target.Record.State != NodeState.Approved) return false;
            target.Session.Enqueue(new SyncResponse { Connect = new ConnectNotice { PeerKey = ByteString.CopyFrom(node.Record.NodeKey), Endpoints = node.Endpoints } });
            return true;
        }
    }

    public void CloseSession(SyncSession session)
    {
        lock (_lock)
        {
            var current = IsCurrent(session, out var node);
            session.Close(Status.DefaultCancelled);
            if (!current) return;
            node.Session = null;
            node.Record = node.Record with { LastSeen = _time.GetUtcNow().UtcDateTime };
            _store.UpdateNode(node.Record);
            Changed(node);
            if (node.Record.Ephemeral)
            {
                var id = node.Record.Id;
                node.EphemeralRemoval = _time.CreateTimer(_ => RemoveIfStillOffline(id), null, _options.EphemeralTimeout, Timeout.InfiniteTimeSpan);
            }
        }
    }

    public List<Node> ListNodes()
    {
        lock (_lock) return _nodes.Values.OrderBy(n => n.Record.Id).Select(AdminView).ToList();
    }

    public Node GetNode(string reference)
    {
        lock (_lock) return AdminView(Find(reference));
    }

    public Node RenameNode(string reference, string newName)
    {
        if (!NodeNames.IsValid(newName)) throw Error(StatusCode.InvalidArgument, $"\"{newName}\" is not a valid name: lowercase letters, digits and hyphens, at most 63.");
        lock (_lock)
        {
            var node = Find(reference);
            if (_nodes.Values.Any(n => n != node && n.Record.Name == newName)) throw Error(StatusCode.AlreadyExists, $"Another node is named \"{newName}\".");
            return Save(node, node.Record with { Name = newName });
        }
    }

    public Node ApproveNode(string reference)
    {
        lock (_lock)
        {
            var node = Find(reference);
            return node.Record.State == NodeState.Approved ? AdminView(node) : Save(node, node.Record with { State = NodeState.Approved });
        }
    }

    /// <summary>Stores a node's new record and tells the mesh.</summary>
    private Node Save(NodeEntry node, NodeRecord record)
    {
        node.Record = record;
        _store.UpdateNode(record);
        Changed(node);
        return AdminView(node);
    }

    /// <summary>Expires a node: it leaves every netmap, its stream ends, and its token stops working.</summary>
    public Node ExpireNode(string reference)
    {
        lock (_lock)
        {
            var node = Find(reference);
            Expire(node, "The node was expired by an admin.");
            return AdminView(node);
        }
    }

    public void DeleteNode(string reference)
    {
        lock (_lock) Delete(Find(reference), "The node was deleted by an admin.");
    }

    public (PreAuthKey Key, string Secret) CreatePreAuthKey(bool reusable, bool ephemeral, TimeSpan? expiration, IReadOnlyList<string> tags)
    {
        if (expiration is { } e && e <= TimeSpan.Zero) throw Error(StatusCode.InvalidArgument, "expiration must be positive.");
        foreach (var tag in tags)
        {
            if (tag.Length is 0 or > 64 || !tag.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or ':' or '.'))
            {
                throw Error(StatusCode.InvalidArgument, $"tag \"{tag}\" must be 1-64 letters, digits or -_:.");
            }
        }
        var (id, secret) = Secrets.Create(Secrets.PreAuthKeyPrefix);
        var now = _time.GetUtcNow().UtcDateTime;
        var record = new PreAuthKeyRecord
        {
            Id = id,
            Hash = Secrets.Hash(secret),
            Reusable = reusable,
            Ephemeral = ephemeral,
            Tags = tags,
            Created = now,
            Expiration = expiration is { } lifetime ? now + lifetime : null,
        };
        lock (_lock)
        {
            _store.InsertPreAuthKey(record);
            _preAuthKeys[id] = record;
        }
        return (View(record), secret);
    }

    public List<PreAuthKey> ListPreAuthKeys()
    {
        lock (_lock) return _preAuthKeys.Values.OrderBy(k => k.Created).Select(View).ToList();
    }

    public PreAuthKey RevokePreAuthKey(string id, bool expireNodes)
    {
        lock (_lock)
        {
            if (!_preAuthKeys.TryGetValue(id, out var key)) throw Error(StatusCode.NotFound, $"No pre-auth key {id}.");
            _store.RevokePreAuthKey(id);
            key = _preAuthKeys[id] = key with { Revoked = true };
            if (expireNodes)
            {
                foreach (var node in _nodes.Values.Where(n => n.Record.PreAuthKeyId == id).ToList()) Expire(node, "The pre-auth key this node joined with was revoked.");
            }
            return View(key);
        }
    }

    /// <summary>Creates the first admin API key when there is none yet; null when keys exist.</summary>
    public string? BootstrapApiKey()
    {
        lock (_lock) return _apiKeys.Count == 0 ? CreateApiKey().Secret : null;
    }

    public (ApiKey Key, string Secret) CreateApiKey()
    {
        var (id, secret) = Secrets.Create(Secrets.ApiKeyPrefix);
        var record = new ApiKeyRecord { Id = id, Hash = Secrets.Hash(secret), Created = _time.GetUtcNow().UtcDateTime };
        lock (_lock)
        {
            _store.InsertApiKey(record);
            _apiKeys[id] = record;
        }
        return (View(record), secret);
    }

    public List<ApiKey> ListApiKeys()
    {
        lock (_lock) return _apiKeys.Values.OrderBy(k => k.Created).Select(View).ToList();
    }

    public ApiKey RevokeApiKey(string id)
    {
        lock (_lock)
        {
            if (!_apiKeys.TryGetValue(id, out var key)) throw Error(StatusCode.NotFound, $"No API key {id}.");
            if (!key.Revoked && _apiKeys.Values.Count(k => !k.Revoked) == 1)
            {
                throw Error(StatusCode.FailedPrecondition, "This is the last active API key; create another before revoking it.");
            }
            _store.RevokeApiKey(id);
            return View(_apiKeys[id] = key with { Revoked = true });
        }
    }

    public bool IsValidApiKey(string secret)
    {
        var id = Secrets.IdOf(secret, Secrets.ApiKeyPrefix);
        lock (_lock) return id is not null && _apiKeys.TryGetValue(id, out var key) && !key.Revoked && Secrets.Matches(secret, key.Hash);
    }

    public CoordinatorStatus GetStatus()
    {
        lock (_lock)
        {
            return new CoordinatorStatus
            {
                Version = typeof(MeshState).Assembly.GetName().Version?.ToString(3) ?? "",
                NodesTotal = (uint)_nodes.Count,
                NodesOnline = (uint)_nodes.Values.Count(n => n.Session is not null),
                Serial = _serial,
                Started = Timestamp.FromDateTimeOffset(Started),
            };
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _publishTimer?.Dispose();
            foreach (var node in _nodes.Values)
            {
                node.EphemeralRemoval?.Dispose();
                node.Session?.Close(new Status(StatusCode.Unavailable, "The coordinator is shutting down."));
            }
        }
    }

    private RegisterResponse LogIn(NodeEntry node, PreAuthKeyRecord? key)
    {
        var state = node.Record.State;
        if (state != NodeState.Approved && key is not null)
        {
            ConsumeIfOneOff(key);
            node.Record = node.Record with { State = NodeState.Approved, PreAuthKeyId = key.Id };
            state = NodeState.Approved;
        }
        else if (state == NodeState.Expired)
        {
            throw Error(StatusCode.PermissionDenied, "This node is expired; register it again with a pre-auth key.");
        }
        var token = state == NodeState.Approved ? NewSession(node) : "";
        _store.UpdateNode(node.Record);
        Changed(node);
        return Response(node, token);
    }

    private RegisterResponse CreateNode(PublicKey nodeKey, string hostname, PreAuthKeyRecord? key, DateTimeOffset now)
    {
        var nextBefore = _addresses.Next;
        var (ipv4, ipv6) = _addresses.Allocate();
        var name = NodeNames.Unique(NodeNames.Sanitize(hostname), taken => _nodes.Values.Any(n => n.Record.Name == taken));
        var record = new NodeRecord
        {
            NodeKey = nodeKey.Span.ToArray(),
            Name = name,
            Ipv4 = ipv4.ToString(),
            Ipv6 = ipv6.ToString(),
            State = key is null ? NodeState.Pending : NodeState.Approved,
            Ephemeral = key?.Ephemeral ?? false,
            Tags = key?.Tags ?? [],
            PreAuthKeyId = key?.Id,
            Created = now.UtcDateTime,
        };
        var node = new NodeEntry(record);
        var token = key is null ? "" : NewSession(node);
        try
        {
            var id = _store.InsertNode(node.Record, key is { Reusable: false } ? key.Id : null, BitConverter.GetBytes(_addresses.Next));
            node.Record = node.Record with { Id = id };
        }
        catch (Exception ex) when (ex is Microsoft.Data.Sqlite.SqliteException or InvalidOperationException)
        {
            _addresses.Reset(nextBefore);
            _bySession.Remove(_bySession.FirstOrDefault(s => s.Value == node).Key ?? "");
            _logger.LogWarning(ex, "Registering {Name} failed.", name);
            throw Error(StatusCode.Aborted, "Registration failed; nothing was stored. Try again.");
        }
        if (key is { Reusable: false }) _preAuthKeys[key.Id] = key with { Used = true };
        Add(node);
        Changed(node);
        _logger.LogInformation("Registered {Name} ({Address}) as {State}.", name, record.Ipv4, record.State);
        return Response(node, token);
    }

    private PreAuthKeyRecord UsablePreAuthKey(string secret, DateTimeOffset now)
    {
        var id = Secrets.IdOf(secret, Secrets.PreAuthKeyPrefix)!;
        if (!_preAuthKeys.TryGetValue(id, out var key) || !Secrets.Matches(secret, key.Hash) || !key.IsUsable(now.UtcDateTime))
        {
            throw Error(StatusCode.PermissionDenied, "The pre-auth key is unknown, expired, used or revoked.");
        }
        return key;
    }

    private void ConsumeIfOneOff(PreAuthKeyRecord key)
    {
        if (key.Reusable) return;
        _store.MarkPreAuthKeyUsed(key.Id);
        _preAuthKeys[key.Id] = key with { Used = true };
    }

    private string NewSession(NodeEntry node)
    {
        if (node.Record.SessionHash is { } old) _bySession.Remove(Convert.ToHexString(old));
        var (_, token) = Secrets.Create(Secrets.SessionPrefix);
        var hash = Secrets.Hash(token);
        node.Record = node.Record with { SessionHash = hash };
        _bySession[Convert.ToHexString(hash)] = node;
        return token;
    }

    private void Expire(NodeEntry node, string reason)
    {
        if (node.Record.SessionHash is { } hash) _bySession.Remove(Convert.ToHexString(hash));
        node.Record = node.Record with { State = NodeState.Expired, SessionHash = null };
        _store.UpdateNode(node.Record);
        node.Session?.Close(new Status(StatusCode.Unauthenticated, reason));
        node.Session = null;
        Removed(node);
    }

    private void Delete(NodeEntry node, string reason)
    {
        _store.DeleteNode(node.Record.Id);
        _nodes.Remove(node.Record.Id);
        _byKey.Remove(node.Key);
        if (node.Record.SessionHash is { } hash) _bySession.Remove(Convert.ToHexString(hash));
        node.EphemeralRemoval?.Dispose();
        node.Session?.Close(new Status(StatusCode.Unauthenticated, reason));
        node.Session = null;
        Removed(node);
        _logger.LogInformation("Removed {Name}: {Reason}", node.Record.Name, reason);
    }

    private void RemoveIfStillOffline(long id)
    {
        lock (_lock)
        {
            if (_nodes.TryGetValue(id, out var node) && node.Session is null && node.Record.Ephemeral) Delete(node, "The ephemeral node went offline.");
        }
    }

    private void Changed(NodeEntry node)
    {
        node.Peer = null;
        if (node.Record.State != NodeState.Approved) return;
        _pendingRemoved.Remove((ulong)node.Record.Id);
        _pendingChanged[node.Record.Id] = node;
        SchedulePublish();
    }

    private void Removed(NodeEntry node)
    {
        _pendingChanged.Remove(node.Record.Id);
        _pendingRemoved.Add((ulong)node.Record.Id);
        SchedulePublish();
    }

    private void SchedulePublish()
    {
        if (_options.ChangeBatchWindow <= TimeSpan.Zero) PublishPending();
        else _publishTimer ??= _time.CreateTimer(_ => PublishPendingLocked(), null, _options.ChangeBatchWindow, Timeout.InfiniteTimeSpan);
    }

    private void PublishPendingLocked()
    {
        lock (_lock) PublishPending();
    }

    /// <summary>Sends what changed since the last delta as one delta with the next serial, kept for resuming agents.</summary>
    private void PublishPending()
    {
        _publishTimer?.Dispose();
        _publishTimer = null;
        if (_pendingChanged.Count == 0 && _pendingRemoved.Count == 0) return;
        var delta = new NetMapDelta();
        foreach (var node in _pendingChanged.Values) delta.PeersChanged.Add(PeerOf(node));
        delta.PeersRemoved.AddRange(_pendingRemoved);
        _pendingChanged.Clear();
        _pendingRemoved.Clear();
        delta.Serial = ++_serial;
        var message = new SyncResponse { Delta = delta };
        _history.Enqueue((delta.Serial, message));
        while (_history.Count > _options.ChangeHistory) _history.Dequeue();
        foreach (var node in _nodes.Values) node.Session?.Enqueue(message);
    }

    private bool TryQueueMissedDeltas(SyncSession session, ulong lastSerial)
    {
        if (lastSerial == 0 || lastSerial > _serial) return false;
        if (lastSerial < _serial && (_history.Count == 0 || _history.Peek().Serial > lastSerial + 1)) return false;
        foreach (var (serial, delta) in _history)
        {
            if (serial > lastSerial) session.Enqueue(delta);
        }
        return true;
    }

    /// <summary>
    /// A full map, the same for every agent that reached the same STUN address, with its serial; the caller
    /// follows it with the deltas since. It is rebuilt only every <see cref="FullMapRebuildChanges"/> changes, so a
    /// storm of agents connecting (each one a change) shares a few maps, each serialized once.
    /// </summary>
    private (SyncResponse Map, ulong Serial) FullMap(IReadOnlyList<string> stunServers)
    {
        var key = string.Join(",", stunServers);
        if (_fullMap is { } cached && _fullMapStun == key && _serial - _fullMapSerial < FullMapRebuildChanges) return (cached, _fullMapSerial);
        var map = new NetMap { Serial = _serial };
        foreach (var node in _nodes.Values)
        {
            if (node.Record.State == NodeState.Approved) map.Peers.Add(PeerOf(node));
        }
        map.Relays.AddRange(Relays);
        map.StunServers.AddRange(stunServers);
        (_fullMap, _fullMapSerial, _fullMapStun) = (new SyncResponse { Full = map }, _serial, key);
        return (_fullMap, _fullMapSerial);
    }

    /// <summary>The node as peers see it; built once per change and shared, never modified after.</summary>
    private Peer PeerOf(NodeEntry node)
    {
        if (node.Peer is { } cached) return cached;
        var record = node.Record;
        var peer = new Peer
        {
            NodeId = (ulong)record.Id,
            NodeKey = ByteString.CopyFrom(record.NodeKey),
            Name = record.Name,
            Addresses = { record.Ipv4 + "/32", record.Ipv6 + "/128" },
            AllowedIps = { record.Ipv4 + "/32", record.Ipv6 + "/128" },
            Endpoints = node.Endpoints,
            Online = node.Session is not null,
            Tags = { record.Tags },
        };
        if (record.LastSeen is { } seen) peer.LastSeen = Timestamp.FromDateTime(seen);
        node.Peer = peer;
        return peer;
    }

    private Node AdminView(NodeEntry node) => new()
    {
        Id = (ulong)node.Record.Id,
        Name = node.Record.Name,
        NodeKey = ByteString.CopyFrom(node.Record.NodeKey),
        Addresses = { node.Record.Ipv4, node.Record.Ipv6 },
        State = node.Record.State,
        Online = node.Session is not null,
        Ephemeral = node.Record.Ephemeral,
        Tags = { node.Record.Tags },
        Endpoints = node.Endpoints,
        Created = Timestamp.FromDateTime(node.Record.Created),
        LastSeen = node.Record.LastSeen is { } seen ? Timestamp.FromDateTime(seen) : null,
    };

    private static PreAuthKey View(PreAuthKeyRecord key) => new()
    {
        Id = key.Id,
        Reusable = key.Reusable,
        Ephemeral = key.Ephemeral,
        Tags = { key.Tags },
        Created = Timestamp.FromDateTime(key.Created),
        Expiration = key.Expiration is { } e ? Timestamp.FromDateTime(e) : null,
        Used = key.Used,
        Revoked = key.Revoked,
    };

    private static ApiKey View(ApiKeyRecord key) => new() { Id = key.Id, Created = Timestamp.FromDateTime(key.Created), Revoked = key.Revoked };

    private RegisterResponse Response(NodeEntry node, string token) => new()
    {
        State = node.Record.State == NodeState.Approved ? RegistrationState.Approved : RegistrationState.Pending,
        NodeId = (ulong)node.Record.Id,
        Name = node.Record.Name,
        Addresses = { node.Record.Ipv4 + "/32", node.Record.Ipv6 + "/128" },
        SessionToken = token,
    };

    /// <summary>A node by numeric id, name, or base64 node key.</summary>
    private NodeEntry Find(string reference)
    {
        if (long.TryParse(reference, out var id) && _nodes.TryGetValue(id, out var byId)) return byId;
        var byName = _nodes.Values.FirstOrDefault(n => n.Record.Name == reference);
        if (byName is not null) return byName;
        try
        {
            if (_byKey.TryGetValue(PublicKey.Parse(reference), out var byKey)) return byKey;
        }
        catch (FormatException)
        {
        }
        throw Error(StatusCode.NotFound, $"No node \"{reference}\" (give an id, a name or a node key).");
    }

    private bool IsCurrent(SyncSession session, out NodeEntry node)
    {
        node = null!;
        if (session.CloseStatus is not null || !_nodes.TryGetValue(session.NodeId, out var found) || found.Session != session) return false;
        node = found;
        return true;
    }

    private void Add(NodeEntry node)
    {
        _nodes[node.Record.Id] = node;
        _byKey[node.Key] = node;
        if (node.Record.SessionHash is { } hash && node.Record.State == NodeState.Approved) _bySession[Convert.ToHexString(hash)] = node;
    }

    private static string SessionKey(string token) => Convert.ToHexString(Secrets.Hash(token));

    private static RpcException Error(StatusCode code, string message) => new(new Status(code, message));

    private static PrivateKey LoadOrCreateCoordinatorKey(CoordinatorStore store)
    {
        var bytes = store.GetMeta("coordinator_key");
        try
        {
            if (bytes is not null) return PrivateKey.FromBytes(bytes);
            var key = PrivateKey.Generate();
            bytes = new byte[PrivateKey.Size];
            key.Export(bytes);
            store.SetMeta("coordinator_key", bytes);
            return key;
        }
        finally
        {
            if (bytes is not null) System.Security.Cryptography.CryptographicOperations.ZeroMemory(bytes);
        }
    }

    private static IPNetwork LoadOrCreateUlaPrefix(CoordinatorStore store)
    {
        if (store.GetMeta("ipv6_prefix") is { } bytes) return IPNetwork.Parse(System.Text.Encoding.ASCII.GetString(bytes));
        var prefix = AddressAllocator.RandomUlaPrefix();
        store.SetMeta("ipv6_prefix", System.Text.Encoding.ASCII.GetBytes(prefix.ToString()));
        return prefix;
    }

    private sealed class NodeEntry(NodeRecord record)
    {
        public NodeRecord Record { get; set; } = record;
        public PublicKey Key { get; } = new(record.NodeKey);
        public Endpoints Endpoints { get; set; } = new();
        public SyncSession? Session { get; set; }
        public Peer? Peer { get; set; }
        public ITimer? EphemeralRemoval { get; set; }
    }
}
