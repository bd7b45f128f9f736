using Mesh.WireGuard.Core;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Paths;

public enum PathKind
{
    None,
    Direct,
    Relay,
}

/// <summary>Where a peer's traffic goes right now, and why; a relayed peer's traffic goes over UDP or over the relay's TCP stream.</summary>
public sealed record PeerPathStatus(
    PublicKey Key,
    PathKind Path,
    NetEndpoint? Endpoint,
    string? Relay,
    bool RelayOverTcp,
    TimeSpan? Latency,
    Technique Technique,
    TimeSpan? DirectSince,
    string Reason);

/// <summary>The answer to one user ping: the path it took and how long the round trip was.</summary>
public sealed record PingReply(PathKind Path, NetEndpoint? Endpoint, string? Relay, TimeSpan Latency);
