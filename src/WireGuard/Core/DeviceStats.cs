namespace Mesh.WireGuard.Core;

public enum DropReason
{
    TooShort,
    UnknownMessageType,
    WrongSize,
    BadMac1,
    RateLimited,
    HandshakeRejected,
    ReplayedInitiation,
    UnknownIndex,
    KeypairExpired,
    AuthenticationFailed,
    ReplayedPacket,
    InvalidInnerPacket,
    AllowedIpsMismatch,
    NoRoute,
    NoEndpoint,
    StagedQueueFull,
    BadCookieReply,
    NoPrivateKey,
    HandshakeQueueFull,
    /// <summary>The inbound filter (the mesh policy) refused the packet.</summary>
    Filtered,
}

/// <summary>What the device dropped and why, and what it did against load; counters only grow.</summary>
public sealed class DeviceStats
{
    private readonly long[] _drops = new long[Enum.GetValues<DropReason>().Length];
    private long _cookieRepliesSent;
    private long _handshakesCompleted;

    public long Dropped(DropReason reason) => Interlocked.Read(ref _drops[(int)reason]);

    public long TotalDropped
    {
        get
        {
            long total = 0;
            for (var i = 0; i < _drops.Length; i++) total += Interlocked.Read(ref _drops[i]);
            return total;
        }
    }

    public long CookieRepliesSent => Interlocked.Read(ref _cookieRepliesSent);
    public long HandshakesCompleted => Interlocked.Read(ref _handshakesCompleted);

    internal void Drop(DropReason reason) => Interlocked.Increment(ref _drops[(int)reason]);
    internal void CookieReplySent() => Interlocked.Increment(ref _cookieRepliesSent);
    internal void HandshakeCompleted() => Interlocked.Increment(ref _handshakesCompleted);
}
