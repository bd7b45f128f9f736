using Mesh.Protos.V1;

namespace Mesh.Coordinator.Store;

/// <summary>A node as the store keeps it; the node registry is the only writer.</summary>
[GenerateSerializer, Immutable]
public sealed record NodeRecord
{
    [Id(0)] public long Id { get; init; }
    [Id(1)] public required byte[] NodeKey { get; init; }
    [Id(2)] public required string Name { get; init; }
    [Id(3)] public required string Ipv4 { get; init; }
    [Id(4)] public required string Ipv6 { get; init; }
    [Id(5)] public NodeState State { get; init; }
    [Id(6)] public bool Ephemeral { get; init; }
    [Id(7)] public IReadOnlyList<string> Tags { get; init; } = [];
    [Id(8)] public string? PreAuthKeyId { get; init; }
    [Id(9)] public byte[]? SessionHash { get; init; }
    [Id(10)] public DateTime Created { get; init; }
    [Id(11)] public DateTime? LastSeen { get; init; }

    /// <summary>The user the node belongs to (its pre-auth key's); a tagged node is owned by its tags instead.</summary>
    [Id(12)] public long? UserId { get; init; }
}

/// <summary>A user: who pre-auth keys and the nodes joined with them belong to.</summary>
[GenerateSerializer, Immutable]
public sealed record UserRecord
{
    [Id(0)] public long Id { get; init; }
    [Id(1)] public required string Name { get; init; }
    [Id(2)] public DateTime Created { get; init; }
}

/// <summary>A pre-auth key as the store keeps it (the secret only as a hash); the key ring is the only writer.</summary>
[GenerateSerializer, Immutable]
public sealed record PreAuthKeyRecord
{
    [Id(0)] public required string Id { get; init; }
    [Id(1)] public required byte[] Hash { get; init; }
    [Id(2)] public bool Reusable { get; init; }
    [Id(3)] public bool Ephemeral { get; init; }
    [Id(4)] public IReadOnlyList<string> Tags { get; init; } = [];
    [Id(5)] public DateTime Created { get; init; }
    [Id(6)] public DateTime? Expiration { get; init; }
    [Id(7)] public bool Used { get; init; }
    [Id(8)] public bool Revoked { get; init; }

    /// <summary>The user the key belongs to: nodes joined with it are that user's.</summary>
    [Id(9)] public long? UserId { get; init; }

    public bool IsUsable(DateTime now) => !Revoked && (Reusable || !Used) && (Expiration is null || Expiration > now);
}

/// <summary>An admin API key as the store keeps it; the key ring is the only writer.</summary>
[GenerateSerializer, Immutable]
public sealed record ApiKeyRecord
{
    [Id(0)] public required string Id { get; init; }
    [Id(1)] public required byte[] Hash { get; init; }
    [Id(2)] public DateTime Created { get; init; }
    [Id(3)] public bool Revoked { get; init; }
}

/// <summary>One admin action: who (the API key's id), what, on what, when, and from where.</summary>
public sealed record AuditRecord(long Id, DateTime At, string Actor, string Action, string Target, string Source);

/// <summary>A version of the policy as an admin set it: the file as written, when, and by whom.</summary>
[GenerateSerializer, Immutable]
public sealed record PolicyRecord([property: Id(0)] long Version, [property: Id(1)] string Text, [property: Id(2)] DateTime SetAt, [property: Id(3)] string Actor);
