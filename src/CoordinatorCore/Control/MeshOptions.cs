using System.Net;

namespace Mesh.Coordinator.Control;

/// <summary>How the mesh is run: address prefixes, lifetimes, and how changes are batched and kept.</summary>
public sealed record MeshOptions
{
    public IPNetwork Ipv4Prefix { get; init; } = IPNetwork.Parse("100.64.0.0/10");

    /// <summary>Null: a random ULA /48 chosen at first start and kept in the database.</summary>
    public IPNetwork? Ipv6Prefix { get; init; }

    /// <summary>How long an ephemeral node may stay offline before it is removed.</summary>
    public TimeSpan EphemeralTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>How many recent changes are kept so reconnecting agents can resume instead of taking a full map.</summary>
    public int ChangeHistory { get; init; } = 8192;

    public TimeSpan ChallengeLifetime { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Whether nodes may ask to join without a pre-auth key and wait for an admin (--no-keyless-registration turns it off).</summary>
    public bool KeylessRegistration { get; init; } = true;

    /// <summary>How many keyless nodes may wait for approval at once, and for how long each.</summary>
    public int MaxPendingNodes { get; init; } = 1000;
    public TimeSpan PendingLifetime { get; init; } = TimeSpan.FromHours(24);

    /// <summary>
    /// Changes within this window go out as one delta: a storm of agents coming online is a few deltas, not
    /// one per agent. Zero publishes every change at once.
    /// </summary>
    public TimeSpan ChangeBatchWindow { get; init; } = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Under a storm of changes, deltas go out at most this often, after a burst of <see cref="DeltaBurst"/>, each
    /// with the changes since the last: a delta is a message on every stream it concerns, and at 10,000 streams
    /// opening at once the messages, not their bytes, were the cost (50 deltas a second, millions of messages). A
    /// change after a quiet spell still goes out after <see cref="ChangeBatchWindow"/>.
    /// </summary>
    public double DeltasPerSecond { get; init; } = 5;
    public int DeltaBurst { get; init; } = 10;
}
