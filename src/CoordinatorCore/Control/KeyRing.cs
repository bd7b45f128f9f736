using Mesh.Control;
using Mesh.Coordinator.Store;

namespace Mesh.Coordinator.Control;

/// <summary>What a pre-auth key grants the node that registers with it.</summary>
[GenerateSerializer, Immutable]
public sealed record KeyGrant([property: Id(0)] string KeyId, [property: Id(1)] bool OneOff, [property: Id(2)] bool Ephemeral, [property: Id(3)] IReadOnlyList<string> Tags, [property: Id(4)] long? UserId);

/// <summary>
/// Users, the pre-auth keys they own (for nodes to join with) and admin API keys, in memory and written through to the store.
/// The secrets themselves are never kept, only their hashes. Not thread-safe: one owner (the key ring grain,
/// or the NAT lab's one thread) calls it, and its awaits keep the caller's context (a grain's turn).
/// </summary>
public sealed class KeyRing
{
    private readonly ICoordinatorStore _store;
    private readonly Dictionary<string, PreAuthKeyRecord> _preAuthKeys;
    private readonly Dictionary<string, ApiKeyRecord> _apiKeys;
    private readonly Dictionary<long, UserRecord> _users;

    /// <summary>Who a key made without a user belongs to (every key and node of before users existed went to it).</summary>
    public const string DefaultUser = "default";

    private KeyRing(ICoordinatorStore store, List<UserRecord> users, List<PreAuthKeyRecord> preAuthKeys, List<ApiKeyRecord> apiKeys)
    {
        _store = store;
        _users = users.ToDictionary(u => u.Id);
        _preAuthKeys = preAuthKeys.ToDictionary(k => k.Id);
        _apiKeys = apiKeys.ToDictionary(k => k.Id);
    }

    public static async Task<KeyRing> LoadAsync(ICoordinatorStore store) =>
        new(store, await store.LoadUsersAsync(), await store.LoadPreAuthKeysAsync(), await store.LoadApiKeysAsync());

    public List<UserRecord> ListUsers() => _users.Values.OrderBy(u => u.Id).ToList();

    public UserRecord? FindUser(string name) => _users.Values.FirstOrDefault(u => u.Name == name);

    public UserRecord? User(long? id) => id is { } known && _users.TryGetValue(known, out var user) ? user : null;

    public async Task<Result<UserRecord>> CreateUserAsync(string name, DateTime now)
    {
        if (UserNameProblem(name) is { } invalid) return invalid;
        if (FindUser(name) is not null) return new Problem(Failure.AlreadyExists, $"A user {name} exists already.");
        var user = new UserRecord { Name = name, Created = now };
        long id = 0;
        if (await WriteAsync(async () => id = await _store.InsertUserAsync(user)) is { } down) return down;
        return _users[id] = user with { Id = id };
    }

    public async Task<Result<UserRecord>> RenameUserAsync(string name, string newName)
    {
        if (FindUser(name) is not { } user) return Problem.NotFound($"No user {name}.");
        if (UserNameProblem(newName) is { } invalid) return invalid;
        if (FindUser(newName) is not null) return new Problem(Failure.AlreadyExists, $"A user {newName} exists already.");
        if (await WriteAsync(() => _store.RenameUserAsync(user.Id, newName)) is { } down) return down;
        return _users[user.Id] = user with { Name = newName };
    }

    /// <summary>Deletes a user that owns no pre-auth key and, as <paramref name="nodesOwned"/> counts them, no node.</summary>
    public async Task<Result<UserRecord>> DeleteUserAsync(string name, int nodesOwned)
    {
        if (FindUser(name) is not { } user) return Problem.NotFound($"No user {name}.");
        var keys = _preAuthKeys.Values.Count(k => k.UserId == user.Id);
        if (keys > 0 || nodesOwned > 0)
        {
            return new Problem(Failure.FailedPrecondition, $"User {name} still owns {nodesOwned} nodes and {keys} pre-auth keys; delete those first.");
        }
        if (await WriteAsync(() => _store.DeleteUserAsync(user.Id)) is { } down) return down;
        _users.Remove(user.Id);
        return user;
    }

    /// <summary>A user's name: 1-64 letters, digits or .-_@ (an email address fits, as in Tailscale's policies).</summary>
    private static Problem? UserNameProblem(string name) =>
        name.Length is 0 or > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '@')
            ? Problem.InvalidArgument($"user name \"{name}\" must be 1-64 letters, digits or .-_@.")
            : null;

    /// <param name="user">Who the key belongs to; null for the default user.</param>
    public async Task<Result<(PreAuthKeyRecord Key, string Secret)>> CreatePreAuthKeyAsync(bool reusable, bool ephemeral, TimeSpan? expiration, IReadOnlyList<string> tags, string? user, DateTime now)
    {
        if (expiration is { } e && e <= TimeSpan.Zero) return Problem.InvalidArgument("expiration must be positive.");
        if (FindUser(user ?? DefaultUser) is not { } owner)
        {
            return user is null ? Problem.InvalidArgument($"There is no user {DefaultUser}: name the key's user.") : Problem.NotFound($"No user {user}.");
        }
        foreach (var tag in tags)
        {
            if (tag.Length is 0 or > 64 || !tag.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or ':' or '.'))
            {
                return Problem.InvalidArgument($"tag \"{tag}\" must be 1-64 letters, digits or -_:.");
            }
        }
        var (id, secret) = Secrets.Create(Secrets.PreAuthKeyPrefix);
        var record = new PreAuthKeyRecord
        {
            Id = id,
            Hash = Secrets.Hash(secret),
            Reusable = reusable,
            Ephemeral = ephemeral,
            Tags = tags,
            Created = now,
            Expiration = expiration is { } lifetime ? now + lifetime : null,
            UserId = owner.Id,
        };
        if (await WriteAsync(() => _store.InsertPreAuthKeyAsync(record)) is { } down) return down;
        _preAuthKeys[id] = record;
        return (record, secret);
    }

    public List<PreAuthKeyRecord> ListPreAuthKeys() => _preAuthKeys.Values.OrderBy(k => k.Created).ToList();

    /// <summary>Checks a pre-auth key's secret and, for a one-off key, marks it used; <see cref="ReleaseAsync"/> undoes that.</summary>
    public async Task<Result<KeyGrant>> UseAsync(string secret, DateTime now)
    {
        var id = Secrets.IdOf(secret, Secrets.PreAuthKeyPrefix);
        if (id is null || !_preAuthKeys.TryGetValue(id, out var key) || !Secrets.Matches(secret, key.Hash) || !key.IsUsable(now))
        {
            return Problem.PermissionDenied("The pre-auth key is unknown, expired, used or revoked.");
        }
        if (!key.Reusable)
        {
            var used = key with { Used = true };
            if (await WriteAsync(() => _store.UpdatePreAuthKeyAsync(used)) is { } down) return down;
            _preAuthKeys[id] = used;
        }
        return new KeyGrant(key.Id, !key.Reusable, key.Ephemeral, key.Tags, key.UserId);
    }

    /// <summary>A one-off key whose node was never stored is usable again.</summary>
    public async Task ReleaseAsync(string id)
    {
        if (!_preAuthKeys.TryGetValue(id, out var key) || key.Reusable || !key.Used) return;
        var unused = key with { Used = false };
        if (await WriteAsync(() => _store.UpdatePreAuthKeyAsync(unused)) is null) _preAuthKeys[id] = unused;
    }

    public async Task<Result<PreAuthKeyRecord>> RevokePreAuthKeyAsync(string id)
    {
        if (!_preAuthKeys.TryGetValue(id, out var key)) return Problem.NotFound($"No pre-auth key {id}.");
        var revoked = key with { Revoked = true };
        if (await WriteAsync(() => _store.UpdatePreAuthKeyAsync(revoked)) is { } down) return down;
        return _preAuthKeys[id] = revoked;
    }

    /// <summary>The first admin API key when there is none yet; null when keys exist.</summary>
    public async Task<Result<string?>> BootstrapApiKeyAsync(DateTime now)
    {
        if (_apiKeys.Count > 0) return (string?)null;
        var created = await CreateApiKeyAsync(now);
        return created.Ok ? created.Value.Secret : created.Problem!;
    }

    public async Task<Result<(ApiKeyRecord Key, string Secret)>> CreateApiKeyAsync(DateTime now)
    {
        var (id, secret) = Secrets.Create(Secrets.ApiKeyPrefix);
        var record = new ApiKeyRecord { Id = id, Hash = Secrets.Hash(secret), Created = now };
        if (await WriteAsync(() => _store.InsertApiKeyAsync(record)) is { } down) return down;
        _apiKeys[id] = record;
        return (record, secret);
    }

    public List<ApiKeyRecord> ListApiKeys() => _apiKeys.Values.OrderBy(k => k.Created).ToList();

    public async Task<Result<ApiKeyRecord>> RevokeApiKeyAsync(string id)
    {
        if (!_apiKeys.TryGetValue(id, out var key)) return Problem.NotFound($"No API key {id}.");
        if (!key.Revoked && _apiKeys.Values.Count(k => !k.Revoked) == 1)
        {
            return new Problem(Failure.FailedPrecondition, "This is the last active API key; create another before revoking it.");
        }
        if (await WriteAsync(() => _store.RevokeApiKeyAsync(id)) is { } down) return down;
        return _apiKeys[id] = key with { Revoked = true };
    }

    public bool IsValidApiKey(string secret)
    {
        var id = Secrets.IdOf(secret, Secrets.ApiKeyPrefix);
        return id is not null && _apiKeys.TryGetValue(id, out var key) && !key.Revoked && Secrets.Matches(secret, key.Hash);
    }

    /// <summary>Runs a store write; null when it went through, the problem (nothing changed) when the store is down.</summary>
    internal static async Task<Problem?> WriteAsync(Func<Task> write)
    {
        try
        {
            await write();
            return null;
        }
        catch (StoreUnavailableException ex)
        {
            return Problem.StoreDown(ex);
        }
    }
}
