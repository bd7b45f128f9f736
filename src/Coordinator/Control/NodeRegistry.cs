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

/// <summary>What registering gave the node: its name and addresses, and a session token once it is approved.</summary>
[GenerateSerializer, Immutable]
public sealed record Registration(
    [property: Id(0)] bool Approved,
    [property: Id(1)] long NodeId,
    [property: Id(2)] string Name,
    [property: Id(3)] IReadOnlyList<string> Addresses,
    [property: Id(4)] string SessionToken);

[GenerateSerializer, Immutable]
public sealed record ChallengeData([property: Id(0)] byte[] CoordinatorKey, [property: Id(1)] byte[] Nonce);

/// <summary>
/// The nodes of the mesh: registration with a proof of key possession over a single-use challenge, pre-auth keys
/// or admin approval, stable addresses, names, session tokens, expiry and deletion, and removing ephemeral nodes
/// that stay offline. The in-memory state follows the store only after a write went through, so a store that is
/// down changes nothing. Every change is told to the netmap. Not thread-safe: one owner (the node registry grain,
/// or the NAT lab's one thread) calls it, and its awaits keep the caller's context (a grain's turn).
/// </summary>
public sealed class NodeRegistry
{
    private const int MaxChallenges = 10_000;
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
    private readonly Dictionary<string, DateTimeOffset> _challenges = new(StringComparer.Ordinal);
    private readonly HashSet<long> _online = new();
    private readonly Dictionary<long, IDisposable> _removals = new();

    private NodeRegistry(ICoordinatorStore store, MeshOptions options, IKeyService keys, INetmapSink netmap, IWorkScheduler scheduler,
        TimeProvider time, ILogger logger, PrivateKey coordinatorKey, AddressAllocator addresses)
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
    }

    public static async Task<NodeRegistry> LoadAsync(ICoordinatorStore store, MeshOptions options, CoordinatorIdentity identity, IKeyService keys,
        INetmapSink netmap, IWorkScheduler scheduler, TimeProvider time, ILogger logger)
    {
        var counter = await store.GetMetaAsync(StoreFormats.AddressCounterKey) is { } bytes ? BitConverter.ToInt64(bytes) : 1;
        var registry = new NodeRegistry(store, options, keys, netmap, scheduler, time, logger, identity.Key,
            new AddressAllocator(options.Ipv4Prefix, identity.Ipv6Prefix, counter));
        foreach (var record in await store.LoadNodesAsync()) registry.Index(record);
        return registry;
    }

    public int Count => _nodes.Count;

    /// <summary>Every node as the store has it, in id order.</summary>
    public List<NodeRecord> List() => _nodes.Values.OrderBy(n => n.Id).ToList();

    public ChallengeData IssueChallenge()
    {
        var nonce = RandomNumberGenerator.GetBytes(32);
        var now = _time.GetUtcNow();
        if (_challenges.Count > MaxChallenges)
        {
            foreach (var expired in _challenges.Where(c => c.Value < now).Select(c => c.Key).ToList()) _challenges.Remove(expired);
        }
        _challenges[Convert.ToHexString(nonce)] = now + _options.ChallengeLifetime;
        return new ChallengeData(_coordinatorKey.PublicKey.Span.ToArray(), nonce);
    }

    public async Task<Result<Registration>> RegisterAsync(RegistrationRequest request)
    {
        if (request.NodeKey.Length != Key32.Size) return Problem.InvalidArgument($"node_key must be {Key32.Size} bytes, not {request.NodeKey.Length}.");
        if (request.Nonce.Length != 32) return Problem.InvalidArgument("nonce must be the 32 bytes of a challenge.");
        if (request.Proof.Length != RegistrationProof.Size) return Problem.InvalidArgument($"proof must be {RegistrationProof.Size} bytes.");
        if (request.Hostname.Length > 255) return Problem.InvalidArgument("hostname is longer than 255 characters.");
        if (request.AuthKey.Length > 0 && Secrets.IdOf(request.AuthKey, Secrets.PreAuthKeyPrefix) is null) return Problem.InvalidArgument("auth_key is not a pre-auth key (mpk_...).");
        var nodeKey = new PublicKey(request.NodeKey);
        var now = _time.GetUtcNow();
        if (!_challenges.Remove(Convert.ToHexString(request.Nonce), out var expiry) || expiry < now)
        {
            return Problem.Unauthenticated("The challenge is unknown, used or expired; ask for a new one.");
        }
        if (!RegistrationProof.Verify(_coordinatorKey, nodeKey, request.Nonce, request.AuthKey, request.Hostname, request.Proof))
        {
            return Problem.Unauthenticated("The proof of possession of the node key does not verify.");
        }
        KeyGrant? grant = null;
        if (request.AuthKey.Length > 0)
        {
            var used = await _keys.UseAsync(request.AuthKey, now.UtcDateTime);
            if (!used.Ok) return used.Problem!;
            grant = used.Value;
        }
        var known = _byKey.TryGetValue(nodeKey, out var existing);
        var result = known
            ? await LogInAsync(_nodes[existing], grant)
            : await CreateAsync(nodeKey, request.Hostname, grant, now);
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

    public async Task<Result<NodeRecord>> ApproveAsync(string reference)
    {
        var found = Find(reference);
        if (!found.Ok || found.Value!.State == NodeState.Approved) return found;
        return await SaveAsync(found.Value with { State = NodeState.Approved });
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

    public int OnlineCount => _online.Count;

    private async Task<Result<Registration>> LogInAsync(NodeRecord node, KeyGrant? grant)
    {
        var updated = node;
        if (node.State != NodeState.Approved && grant is not null)
        {
            updated = node with { State = NodeState.Approved, PreAuthKeyId = grant.KeyId };
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

    private async Task<Result<Registration>> CreateAsync(PublicKey nodeKey, string hostname, KeyGrant? grant, DateTimeOffset now)
    {
        var nextBefore = _addresses.Next;
        var (ipv4, ipv6) = _addresses.Allocate();
        var name = NodeNames.Unique(NodeNames.Sanitize(hostname), taken => _nodes.Values.Any(n => n.Name == taken));
        var record = new NodeRecord
        {
            NodeKey = nodeKey.Span.ToArray(),
            Name = name,
            Ipv4 = ipv4.ToString(),
            Ipv6 = ipv6.ToString(),
            State = grant is null ? NodeState.Pending : NodeState.Approved,
            Ephemeral = grant?.Ephemeral ?? false,
            Tags = grant?.Tags ?? [],
            PreAuthKeyId = grant?.KeyId,
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
