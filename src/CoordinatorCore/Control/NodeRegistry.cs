using System.Net;
using System.Security.Cryptography;
using Mesh.Control;
using Mesh.Coordinator.Store;
using Mesh.Protos.V1;
using Mesh.WireGuard.Keys;
using Microsoft.Extensions.Logging;

namespace Mesh.Coordinator.Control;

/// <summary>A registration as it arrives: the node key, its proof of possession over a challenge, and how it joins.</summary>
[GenerateSerializer, Immutable]
public sealed record RegistrationRequest(
    [property: Id(0)] byte[] NodeKey,
    [property: Id(1)] string AuthKey,
    [property: Id(2)] string Hostname,
    [property: Id(3)] byte[] Nonce,
    [property: Id(4)] byte[] Proof);

/// <summary>What registering gave the node: its name and addresses and a session token once it is approved, the code to approve it by while it waits.</summary>
[GenerateSerializer, Immutable]
public sealed record Registration(
    [property: Id(0)] bool Approved,
    [property: Id(1)] long NodeId,
    [property: Id(2)] string Name,
    [property: Id(3)] IReadOnlyList<string> Addresses,
    [property: Id(4)] string SessionToken,
    [property: Id(5)] string ApprovalCode = "");

/// <summary>A node that asked to join without a key: no row and no address until an admin approves it by its code or key.</summary>
[GenerateSerializer, Immutable]
public sealed record PendingNode(
    [property: Id(0)] byte[] NodeKey,
    [property: Id(1)] string Hostname,
    [property: Id(2)] string Code,
    [property: Id(3)] DateTimeOffset Since,
    [property: Id(4)] DateTimeOffset Expires);

[GenerateSerializer, Immutable]
public sealed record ChallengeData([property: Id(0)] byte[] CoordinatorKey, [property: Id(1)] byte[] Nonce);

/// <summary>
/// The nodes of the mesh: registration with a proof of key possession over a single-use challenge, pre-auth keys
/// or admin approval (a keyless node waits in a bounded, expiring queue and costs no row and no address until
/// an admin approves it), stable addresses, names, session tokens, expiry and deletion, and removing ephemeral nodes
/// that stay offline. The in-memory state follows the store only after a write went through, so a store that is
/// down changes nothing. Every change is told to the netmap. Not thread-safe: one owner (the node registry grain,
/// or the NAT lab's one thread) calls it, and its awaits keep the caller's context (a grain's turn).
/// </summary>
public sealed class NodeRegistry
{
    /// <summary>Registrations proved within one challenge lifetime; beyond that the registry answers "busy".</summary>
    private const int MaxUsedNonces = 100_000;
    private readonly ICoordinatorStore _store;
    private readonly MeshOptions _options;
    private readonly IKeyService _keys;
    private readonly INetmapSink _netmap;
    private readonly IWorkScheduler _scheduler;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly PrivateKey _coordinatorKey;
    private readonly AddressAllocator _addresses;
    private readonly Dictionary<long, NodeRecord> _nodes = new();
    private readonly Dictionary<PublicKey, long> _byKey = new();
    private readonly Dictionary<string, long> _bySession = new(StringComparer.Ordinal);
    private readonly Challenges _challenges;
    private readonly UsedNonces _usedNonces;
    private readonly Dictionary<PublicKey, PendingNode> _pending = new();
    private readonly HashSet<long> _online = new();
    private readonly Dictionary<long, IDisposable> _removals = new();

    private NodeRegistry(ICoordinatorStore store, MeshOptions options, IKeyService keys, INetmapSink netmap, IWorkScheduler scheduler,
        TimeProvider time, ILogger logger, PrivateKey coordinatorKey, AddressAllocator addresses, Challenges challenges)
    {
        _store = store;
        _options = options;
        _keys = keys;
        _netmap = netmap;
        _scheduler = scheduler;
        _time = time;
        _logger = logger;
        _coordinatorKey = coordinatorKey;
        _addresses = addresses;
        _challenges = challenges;
        _usedNonces = new UsedNonces(MaxUsedNonces, time);
    }

    public static async Task<NodeRegistry> LoadAsync(ICoordinatorStore store, MeshOptions options, CoordinatorIdentity identity, IKeyService keys,
        INetmapSink netmap, IWorkScheduler scheduler, TimeProvider time, ILogger logger)
    {
        var counter = await store.GetMetaAsync(StoreFormats.AddressCounterKey) is { } bytes ? BitConverter.ToInt64(bytes) : 1;
        var registry = new NodeRegistry(store, options, keys, netmap, scheduler, time, logger, identity.Key,
            new AddressAllocator(options.Ipv4Prefix, identity.Ipv6Prefix, counter), new Challenges(identity, options.ChallengeLifetime, time));
        foreach (var record in await store.LoadNodesAsync()) registry.Index(record);
        return registry;
    }

    public int Count => _nodes.Count;

    /// <summary>Every node as the store has it, in id order.</summary>
    public List<NodeRecord> List() => _nodes.Values.OrderBy(n => n.Id).ToList();

    /// <summary>The next address the registry would hand out: what a flood of keyless requests must leave as it is.</summary>
    public long AddressCounter => _addresses.Next;

    public ChallengeData IssueChallenge() => _challenges.Issue();

    public async Task<Result<Registration>> RegisterAsync(RegistrationRequest request)
    {
        if (request.NodeKey.Length != Key32.Size) return Problem.InvalidArgument($"node_key must be {Key32.Size} bytes, not {request.NodeKey.Length}.");
        if (request.Nonce.Length != 32) return Problem.InvalidArgument("nonce must be the 32 bytes of a challenge.");
        if (request.Proof.Length != RegistrationProof.Size) return Problem.InvalidArgument($"proof must be {RegistrationProof.Size} bytes.");
        if (request.Hostname.Length > 255) return Problem.InvalidArgument("hostname is longer than 255 characters.");
        if (request.AuthKey.Length > 0 && Secrets.IdOf(request.AuthKey, Secrets.PreAuthKeyPrefix) is null) return Problem.InvalidArgument("auth_key is not a pre-auth key (mpk_...).");
        var nodeKey = new PublicKey(request.NodeKey);
        var now = _time.GetUtcNow();
        if (_challenges.Expiry(request.Nonce) is not { } expiry) return Problem.Unauthenticated("The challenge is not this coordinator's or has expired; ask for a new one.");
        if (!RegistrationProof.Verify(_coordinatorKey, nodeKey, request.Nonce, request.AuthKey, request.Hostname, request.Proof))
        {
            return Problem.Unauthenticated("The proof of possession of the node key does not verify.");
        }
        switch (_usedNonces.TryUse(request.Nonce, expiry))
        {
            case UsedNonces.Outcome.Replayed:
                return Problem.Unauthenticated("The challenge was used already; ask for a new one.");
            case UsedNonces.Outcome.Full:
                return Problem.ResourceExhausted("Too many registrations at once; try again in a minute.");
        }
        var known = _byKey.TryGetValue(nodeKey, out var existing);
        if (!known && request.AuthKey.Length == 0) return Wait(nodeKey, request.Hostname, now);
        KeyGrant? grant = null;
        if (request.AuthKey.Length > 0)
        {
            var used = await _keys.UseAsync(request.AuthKey, now.UtcDateTime);
            if (!used.Ok) return used.Problem!;
            grant = used.Value;
        }
        var result = known
            ? await LogInAsync(_nodes[existing], grant)
            : await CreateAsync(nodeKey, request.Hostname, grant, grant is not null, now);
        if (result.Ok) _pending.Remove(nodeKey);
        // A one-off key is spent only on the node it let in; a node already approved did not need it.
        var spent = result.Ok && (!known || result.Value!.Approved && _nodes[existing].PreAuthKeyId == grant?.KeyId);
        if (grant is { OneOff: true } && !spent) await _keys.ReleaseAsync(grant.KeyId);
        return result;
    }

    /// <summary>The approved node a sync stream's token belongs to.</summary>
    public Result<NodeRecord> Authenticate(string sessionToken)
    {
        if (_bySession.TryGetValue(SessionKey(sessionToken), out var id) && _nodes[id] is { State: NodeState.Approved } node) return node;
        return Problem.Unauthenticated("The session token is not valid (the node may be expired or deleted); register again.");
    }

    public bool IsApproved(PublicKey nodeKey) => _byKey.TryGetValue(nodeKey, out var id) && _nodes[id].State == NodeState.Approved;

    /// <summary>A node by numeric id, name, or base64 node key.</summary>
    public Result<NodeRecord> Find(string reference)
    {
        if (long.TryParse(reference, out var id) && _nodes.TryGetValue(id, out var byId)) return byId;
        foreach (var node in _nodes.Values)
        {
            if (node.Name == reference) return node;
        }
        try
        {
            if (_byKey.TryGetValue(PublicKey.Parse(reference), out var byKey)) return _nodes[byKey];
        }
        catch (FormatException)
        {
        }
        return Problem.NotFound($"No node \"{reference}\" (give an id, a name or a node key).");
    }

    public async Task<Result<NodeRecord>> RenameAsync(string reference, string newName)
    {
        if (!NodeNames.IsValid(newName)) return Problem.InvalidArgument($"\"{newName}\" is not a valid name: lowercase letters, digits and hyphens, at most 63.");
        var found = Find(reference);
        if (!found.Ok) return found;
        var node = found.Value!;
        if (_nodes.Values.Any(n => n.Id != node.Id && n.Name == newName)) return new Problem(Failure.AlreadyExists, $"Another node is named \"{newName}\".");
        return await SaveAsync(node with { Name = newName });
    }

    /// <summary>
    /// Approves a stored node, or a waiting one by its approval code or node key (never by name: anyone can ask
    /// to join under any name, and an admin must not approve a squatter): it gets its row and addresses now, and
    /// its session at its next registration.
    /// </summary>
    public async Task<Result<NodeRecord>> ApproveAsync(string reference)
    {
        var found = Find(reference);
        if (found.Ok) return found.Value!.State == NodeState.Approved ? found : await SaveAsync(found.Value with { State = NodeState.Approved });
        var now = _time.GetUtcNow();
        if (FindPending(reference, now) is not { } waiting) return found;
        var created = await CreateAsync(new PublicKey(waiting.NodeKey), waiting.Hostname, null, approved: true, now);
        if (!created.Ok) return created.Problem!;
        _pending.Remove(new PublicKey(waiting.NodeKey));
        return _nodes[created.Value!.NodeId];
    }

    /// <summary>The nodes waiting for approval, oldest first.</summary>
    public List<PendingNode> Pending()
    {
        Prune(_time.GetUtcNow());
        return _pending.Values.OrderBy(p => p.Since).ToList();
    }

    /// <summary>The code an admin approves a waiting node by: 40 bits of the key's hash, as XXXX-XXXX in a base32 without look-alikes.</summary>
    public static string ApprovalCode(PublicKey nodeKey)
    {
        const string alphabet = "ABCDEFGHJKMNPQRSTVWXYZ0123456789";
        var hash = System.Security.Cryptography.SHA256.HashData(nodeKey.Span);
        var bits = System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(hash) >> 24;
        var code = new char[9];
        for (int i = 7, at = 8; i >= 0; i--, at--)
        {
            if (at == 4) code[at--] = '-';
            code[at] = alphabet[(int)(bits & 31)];
            bits >>= 5;
        }
        return new string(code);
    }

    private Result<Registration> Wait(PublicKey nodeKey, string hostname, DateTimeOffset now)
    {
        if (!_options.KeylessRegistration) return Problem.PermissionDenied("This coordinator takes only nodes with a pre-auth key (--auth-key).");
        Prune(now);
        var name = NodeNames.Sanitize(hostname);
        var since = _pending.TryGetValue(nodeKey, out var earlier) ? earlier.Since : now;
        if (earlier is null && _pending.Count >= _options.MaxPendingNodes)
        {
            return Problem.ResourceExhausted($"{_options.MaxPendingNodes} nodes already wait for approval; try again later or join with a pre-auth key.");
        }
        var waiting = new PendingNode(nodeKey.Span.ToArray(), name, ApprovalCode(nodeKey), since, now + _options.PendingLifetime);
        _pending[nodeKey] = waiting;
        if (earlier is null) _logger.LogInformation("{Name} asks to join without a key; approve it with `mesh-coordinator nodes approve {Code}`.", name, waiting.Code);
        return new Registration(false, 0, name, [], "", waiting.Code);
    }

    private PendingNode? FindPending(string reference, DateTimeOffset now)
    {
        Prune(now);
        var code = reference.Trim().ToUpperInvariant();
        foreach (var waiting in _pending.Values)
        {
            if (waiting.Code == code || waiting.Code.Replace("-", "") == code) return waiting;
        }
        try
        {
            return _pending.GetValueOrDefault(PublicKey.Parse(reference));
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private void Prune(DateTimeOffset now)
    {
        List<PublicKey>? expired = null;
        foreach (var (key, waiting) in _pending)
        {
            if (waiting.Expires < now) (expired ??= new()).Add(key);
        }
        if (expired is not null) foreach (var key in expired) _pending.Remove(key);
    }

    /// <summary>Expires a node: it leaves every netmap, its stream ends, and its token stops working.</summary>
    public async Task<Result<NodeRecord>> ExpireAsync(string reference)
    {
        var found = Find(reference);
        return found.Ok ? await ExpireAsync(found.Value!, "The node was expired by an admin.") : found;
    }

    /// <summary>Expires every node that joined with the pre-auth key (it was revoked); how many.</summary>
    public async Task<Result<int>> ExpireJoinedWithAsync(string keyId)
    {
        var count = 0;
        foreach (var node in _nodes.Values.Where(n => n.PreAuthKeyId == keyId && n.State != NodeState.Expired).ToList())
        {
            var expired = await ExpireAsync(node, "The pre-auth key this node joined with was revoked.");
            if (!expired.Ok) return expired.Problem!;
            count++;
        }
        return count;
    }

    public async Task<Result<NodeRecord>> DeleteAsync(string reference)
    {
        var found = Find(reference);
        return found.Ok ? await DeleteAsync(found.Value!, "The node was deleted by an admin.") : found;
    }

    /// <summary>A sync stream of the node opened somewhere: an ephemeral node stays.</summary>
    public void NodeOnline(long nodeId)
    {
        if (!_nodes.ContainsKey(nodeId)) return;
        _online.Add(nodeId);
        if (_removals.Remove(nodeId, out var removal)) removal.Dispose();
    }

    /// <summary>The node's stream ended: its last-seen time is kept, and an ephemeral node is removed if it does not come back.</summary>
    public async Task NodeOfflineAsync(long nodeId, DateTime at)
    {
        if (!_online.Remove(nodeId) || !_nodes.TryGetValue(nodeId, out var node)) return;
        var seen = node with { LastSeen = at };
        if (await KeyRing.WriteAsync(() => _store.UpdateNodeAsync(seen)) is null) _nodes[nodeId] = seen;
        if (!node.Ephemeral) return;
        _removals[nodeId] = _scheduler.Schedule(_options.EphemeralTimeout, async () =>
        {
            _removals.Remove(nodeId);
            if (!_online.Contains(nodeId) && _nodes.TryGetValue(nodeId, out var gone) && gone.Ephemeral)
            {
                await DeleteAsync(gone, "The ephemeral node went offline.");
            }
        });
    }

    public bool IsOnline(long nodeId) => _online.Contains(nodeId);

    /// <summary>How many nodes belong to the user (a user with nodes cannot be deleted).</summary>
    public int CountOwnedBy(long userId) => _nodes.Values.Count(n => n.UserId == userId);

    public int OnlineCount => _online.Count;

    private async Task<Result<Registration>> LogInAsync(NodeRecord node, KeyGrant? grant)
    {
        var updated = node;
        if (node.State != NodeState.Approved && grant is not null)
        {
            updated = node with { State = NodeState.Approved, PreAuthKeyId = grant.KeyId, UserId = grant.UserId };
        }
        else if (node.State == NodeState.Expired)
        {
            return Problem.PermissionDenied("This node is expired; register it again with a pre-auth key.");
        }
        var (withSession, token) = updated.State == NodeState.Approved ? NewSession(updated) : (updated, "");
        if (await KeyRing.WriteAsync(() => _store.UpdateNodeAsync(withSession)) is { } down) return down;
        Replace(node, withSession);
        _netmap.NodeUpdated(withSession);
        return Response(withSession, token);
    }

    private async Task<Result<Registration>> CreateAsync(PublicKey nodeKey, string hostname, KeyGrant? grant, bool approved, DateTimeOffset now)
    {
        var nextBefore = _addresses.Next;
        if (!_addresses.TryAllocate(out var ipv4, out var ipv6))
        {
            _logger.LogWarning("Refused to register {Name}: the IPv4 prefix {Prefix} has no free addresses left", hostname, _addresses.Ipv4Prefix);
            return Problem.ResourceExhausted($"The mesh's IPv4 prefix {_addresses.Ipv4Prefix} has no free addresses left; an admin can start a coordinator with a larger --ipv4-prefix.");
        }
        var name = NodeNames.Unique(NodeNames.Sanitize(hostname), taken => _nodes.Values.Any(n => n.Name == taken));
        var record = new NodeRecord
        {
            NodeKey = nodeKey.Span.ToArray(),
            Name = name,
            Ipv4 = ipv4.ToString(),
            Ipv6 = ipv6.ToString(),
            State = approved ? NodeState.Approved : NodeState.Pending,
            Ephemeral = grant?.Ephemeral ?? false,
            Tags = grant?.Tags ?? [],
            PreAuthKeyId = grant?.KeyId,
            UserId = grant?.UserId,
            Created = now.UtcDateTime,
        };
        var (withSession, token) = grant is null ? (record, "") : NewSession(record);
        long id;
        try
        {
            id = await _store.InsertNodeAsync(withSession, _addresses.Next);
        }
        catch (StoreUnavailableException ex)
        {
            _addresses.Reset(nextBefore);
            _logger.LogWarning("Registering {Name} failed: {Reason}", name, ex.Message);
            return Problem.StoreDown(ex);
        }
        var stored = withSession with { Id = id };
        Index(stored);
        _netmap.NodeUpdated(stored);
        _logger.LogInformation("Registered {Name} ({Address}) as {State}.", name, stored.Ipv4, stored.State);
        return Response(stored, token);
    }

    private async Task<Result<NodeRecord>> SaveAsync(NodeRecord record)
    {
        if (await KeyRing.WriteAsync(() => _store.UpdateNodeAsync(record)) is { } down) return down;
        Replace(_nodes[record.Id], record);
        _netmap.NodeUpdated(record);
        return record;
    }

    private async Task<Result<NodeRecord>> ExpireAsync(NodeRecord node, string reason)
    {
        var expired = node with { State = NodeState.Expired, SessionHash = null };
        if (await KeyRing.WriteAsync(() => _store.UpdateNodeAsync(expired)) is { } down) return down;
        Replace(node, expired);
        _netmap.EndSession(node.Id, Problem.Unauthenticated(reason));
        _netmap.NodeUpdated(expired);
        return expired;
    }

    private async Task<Result<NodeRecord>> DeleteAsync(NodeRecord node, string reason)
    {
        if (await KeyRing.WriteAsync(() => _store.DeleteNodeAsync(node.Id)) is { } down) return down;
        _nodes.Remove(node.Id);
        _byKey.Remove(new PublicKey(node.NodeKey));
        if (node.SessionHash is { } hash) _bySession.Remove(Convert.ToHexString(hash));
        _online.Remove(node.Id);
        if (_removals.Remove(node.Id, out var removal)) removal.Dispose();
        _netmap.EndSession(node.Id, Problem.Unauthenticated(reason));
        _netmap.NodeDeleted(node.Id);
        _logger.LogInformation("Removed {Name}: {Reason}", node.Name, reason);
        return node;
    }

    private static (NodeRecord Record, string Token) NewSession(NodeRecord node)
    {
        var (_, token) = Secrets.Create(Secrets.SessionPrefix);
        return (node with { SessionHash = Secrets.Hash(token) }, token);
    }

    private void Index(NodeRecord node)
    {
        _nodes[node.Id] = node;
        _byKey[new PublicKey(node.NodeKey)] = node.Id;
        if (node.SessionHash is { } hash && node.State == NodeState.Approved) _bySession[Convert.ToHexString(hash)] = node.Id;
    }

    private void Replace(NodeRecord old, NodeRecord updated)
    {
        if (old.SessionHash is { } hash) _bySession.Remove(Convert.ToHexString(hash));
        Index(updated);
    }

    private static Registration Response(NodeRecord node, string token) =>
        new(node.State == NodeState.Approved, node.Id, node.Name, [node.Ipv4 + "/32", node.Ipv6 + "/128"], token);

    private static string SessionKey(string token) => Convert.ToHexString(Secrets.Hash(token));
}
