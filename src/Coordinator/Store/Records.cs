using Mesh.Protos.V1;

namespace Mesh.Coordinator.Store;

public sealed record NodeRecord
{
    public long Id { get; init; }
    public required byte[] NodeKey { get; init; }
    public required string Name { get; init; }
    public required string Ipv4 { get; init; }
    public required string Ipv6 { get; init; }
    public NodeState State { get; init; }
    public bool Ephemeral { get; init; }
    public IReadOnlyList<string> Tags { get; init; } = [];
    public string? PreAuthKeyId { get; init; }
    public byte[]? SessionHash { get; init; }
    public DateTime Created { get; init; }
    public DateTime? LastSeen { get; init; }
}

public sealed record PreAuthKeyRecord
{
    public required string Id { get; init; }
    public required byte[] Hash { get; init; }
    public bool Reusable { get; init; }
    public bool Ephemeral { get; init; }
    public IReadOnlyList<string> Tags { get; init; } = [];
    public DateTime Created { get; init; }
    public DateTime? Expiration { get; init; }
    public bool Used { get; init; }
    public bool Revoked { get; init; }

    public bool IsUsable(DateTime now) => !Revoked && (Reusable || !Used) && (Expiration is null || Expiration > now);
}

public sealed record ApiKeyRecord
{
    public required string Id { get; init; }
    public required byte[] Hash { get; init; }
    public DateTime Created { get; init; }
    public bool Revoked { get; init; }
}
