using Mesh.Control;
using Mesh.Coordinator.Store;

namespace Mesh.Coordinator.Control;

/// <summary>What a pre-auth key grants the node that registers with it.</summary>
[GenerateSerializer, Immutable]
public sealed record KeyGrant([property: Id(0)] string KeyId, [property: Id(1)] bool OneOff, [property: Id(2)] bool Ephemeral, [property: Id(3)] IReadOnlyList<string> Tags);

/// <summary>
/// Pre-auth keys (for nodes to join with) and admin API keys, in memory and written through to the store.
/// The secrets themselves are never kept, only their hashes. Not thread-safe: one owner (the key ring grain,
/// or the NAT lab's one thread) calls it, and its awaits keep the caller's context (a grain's turn).
/// </summary>
public sealed class KeyRing
{
    private readonly ICoordinatorStore _store;
    private readonly Dictionary<string, PreAuthKeyRecord> _preAuthKeys;
    private readonly Dictionary<string, ApiKeyRecord> _apiKeys;

    private KeyRing(ICoordinatorStore store, List<PreAuthKeyRecord> preAuthKeys, List<ApiKeyRecord> apiKeys)
    {
        _store = store;
        _preAuthKeys = preAuthKeys.ToDictionary(k => k.Id);
        _apiKeys = apiKeys.ToDictionary(k => k.Id);
    }

    public static async Task<KeyRing> LoadAsync(ICoordinatorStore store) =>
        new(store, await store.LoadPreAuthKeysAsync(), await store.LoadApiKeysAsync());

    public async Task<Result<(PreAuthKeyRecord Key, string Secret)>> CreatePreAuthKeyAsync(bool reusable, bool ephemeral, TimeSpan? expiration, IReadOnlyList<string> tags, DateTime now)
    {
        if (expiration is { } e && e <= TimeSpan.Zero) return Problem.InvalidArgument("expiration must be positive.");
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
        return new KeyGrant(key.Id, !key.Reusable, key.Ephemeral, key.Tags);
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
