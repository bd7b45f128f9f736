namespace Mesh.WireGuard.Core;

/// <summary>The protocol's limits and timers (whitepaper section 6, wireguard-go device/constants.go).</summary>
public static class ProtocolConstants
{
    public const ulong RekeyAfterMessages = 1UL << 60;
    public const ulong RejectAfterMessages = ulong.MaxValue - (1UL << 13);
    public static readonly TimeSpan RekeyAfterTime = TimeSpan.FromSeconds(120);
    public static readonly TimeSpan RejectAfterTime = TimeSpan.FromSeconds(180);
    public static readonly TimeSpan RekeyAttemptTime = TimeSpan.FromSeconds(90);
    public static readonly TimeSpan RekeyTimeout = TimeSpan.FromSeconds(5);
    public static readonly TimeSpan KeepaliveTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Retransmitted initiations wait RekeyTimeout plus up to this much, so peers do not stay in lockstep.</summary>
    public static readonly TimeSpan RekeyTimeoutJitterMax = TimeSpan.FromMilliseconds(334);

    /// <summary>Key material is wiped when no new handshake happened for this long.</summary>
    public static readonly TimeSpan ZeroKeyMaterialAfter = RejectAfterTime * 3;

    public static readonly int MaxTimerHandshakes = (int)(RekeyAttemptTime / RekeyTimeout);
    public const int PaddingMultiple = 16;
    public const int MaxStagedPackets = 128;
    public const int DefaultMtu = 1420;
}
