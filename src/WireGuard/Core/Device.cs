using System.Collections.Concurrent;
using System.Net;
using Mesh.WireGuard.Cookies;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;
using Mesh.WireGuard.Noise;
using Mesh.WireGuard.RateLimit;
using Mesh.WireGuard.Routing;

namespace Mesh.WireGuard.Core;

public sealed class DeviceOptions
{
    public int Mtu { get; init; } = ProtocolConstants.DefaultMtu;

    /// <summary>More handshake messages than this in one second puts the device under load: cookies and rate limits apply.</summary>
    public int UnderLoadHandshakesPerSecond { get; init; } = 64;

    /// <summary>What decides which decrypted packets reach the interface; none lets all through (as WireGuard does).</summary>
    public IInboundFilter? Filter { get; init; }
}

/// <summary>
/// A WireGuard interface's protocol engine with no I/O: datagrams and tunnel packets go in, and what to send
/// or deliver comes out through the <see cref="IPacketSink"/>. Time comes from an <see cref="IClock"/> and
/// timers fire when the host calls <see cref="Tick"/>, so tests and the NAT lab drive it as production does.
/// </summary>
public sealed partial class Device : IDisposable
{
    private static readonly TimeSpan UnderLoadHold = TimeSpan.FromSeconds(1);

    private readonly IPacketSink _sink;
    private readonly DeviceOptions _options;
    private readonly ConcurrentDictionary<PublicKey, Peer> _peers = new();
    private readonly ConcurrentDictionary<uint, IndexEntry> _indices = new();
    /// <summary>Key changes; handshakes themselves run in parallel, each under its peer's lock.</summary>
    private readonly object _handshakeLock = new();
    /// <summary>The under-load state, the cookie secret and the rate limiter.</summary>
    private readonly object _loadLock = new();
    private readonly HandshakeRateLimiter _rateLimiter = new();
    private LocalIdentity? _identity;
    private CookieChecker? _cookieChecker;
    private TimeSpan _loadWindowStart;
    private int _loadWindowCount;
    private TimeSpan? _underLoadUntil;

    public Device(IPacketSink sink, IClock? clock = null, IEntropy? entropy = null, DeviceOptions? options = null)
    {
        _sink = sink;
        Clock = clock ?? SystemClock.Instance;
        Entropy = entropy ?? SystemEntropy.Instance;
        _options = options ?? new DeviceOptions();
        Mtu = _options.Mtu;
    }

    public IClock Clock { get; }
    public IEntropy Entropy { get; }
    public DeviceStats Stats { get; } = new();
    public AllowedIps<Peer> AllowedIps { get; } = new();
    public int Mtu { get; set; }

    /// <summary>The UDP port the host bound, kept here so the UAPI can report it.</summary>
    public int ListenPort { get; set; }

    /// <summary>fwmark for the host's socket, kept for the UAPI.</summary>
    public int FirewallMark { get; set; }

    public PrivateKey? PrivateKey => _identity?.PrivateKey;
    public PublicKey? PublicKey => _identity?.PublicKey;
    public ICollection<Peer> Peers => _peers.Values;

    /// <summary>Sets the interface key. A peer with our own public key is removed, as a peer can't be ourselves.</summary>
    public void SetPrivateKey(PrivateKey? privateKey)
    {
        lock (_handshakeLock)
        {
            _identity = privateKey is null ? null : new LocalIdentity(privateKey);
            _cookieChecker = privateKey is null ? null : new CookieChecker(privateKey.PublicKey, Entropy);
            if (privateKey is not null) RemovePeer(privateKey.PublicKey);
            foreach (var peer in _peers.Values)
            {
                lock (peer.Lock)
                {
                    peer.Handshake.SetLocalKey(privateKey);
                    peer.ZeroKeyMaterial();
                }
            }
        }
    }

    public Peer GetOrAddPeer(PublicKey publicKey)
    {
        if (_identity?.PublicKey.Equals(publicKey) == true) throw new ArgumentException("A peer can't have the interface's own public key.", nameof(publicKey));
        return _peers.GetOrAdd(publicKey, key =>
        {
            var peer = new Peer(this, key);
            peer.Handshake.SetLocalKey(_identity?.PrivateKey);
            return peer;
        });
    }

    public Peer? FindPeer(PublicKey publicKey) => _peers.GetValueOrDefault(publicKey);

    public bool RemovePeer(PublicKey publicKey)
    {
        if (!_peers.TryRemove(publicKey, out var peer)) return false;
        AllowedIps.RemovePeer(peer);
        lock (peer.Lock)
        {
            peer.StopTimers();
            peer.DropStaged();
            peer.ZeroKeyMaterial();
        }
        return true;
    }

    public void RemoveAllPeers()
    {
        foreach (var key in _peers.Keys) RemovePeer(key);
    }

    public void SetPresharedKey(Peer peer, PresharedKey? key)
    {
        lock (peer.Lock) peer.Handshake.SetPresharedKey(key);
    }

    /// <summary>Sets the persistent keepalive interval; turning it on sends a keepalive right away, as wg does.</summary>
    public void SetPersistentKeepalive(Peer peer, TimeSpan interval)
    {
        lock (peer.Lock)
        {
            var wasOff = peer.PersistentKeepalive <= TimeSpan.Zero;
            peer.PersistentKeepalive = interval;
            if (wasOff && interval > TimeSpan.Zero && _identity is not null) SendKeepalive(peer);
        }
    }

    /// <summary>
    /// Starts a handshake now when the peer has no session and no initiation went out in the last
    /// <paramref name="after"/>, rather than waiting for data or for RekeyTimeout: a mesh calls it when a
    /// route to the peer has just appeared, since earlier initiations most likely went nowhere.
    /// Returns false while a session exists or the last initiation is too recent.
    /// </summary>
    public bool ExpediteHandshake(Peer peer, TimeSpan after)
    {
        lock (peer.Lock)
        {
            if (peer.HasSession || peer.HandshakeSentAge is { } age && age < after) return false;
            peer.ForgetHandshakeSent();
            SendHandshakeInitiation(peer, isRetry: false);
            return true;
        }
    }

    /// <summary>Adds prefixes to the peer's, or with <paramref name="replace"/> swaps its whole set at once (lookups never miss in between).</summary>
    public void SetAllowedIps(Peer peer, IReadOnlyCollection<IPNetwork> prefixes, bool replace)
    {
        if (replace) AllowedIps.SetPeerPrefixes(peer, prefixes);
        else foreach (var prefix in prefixes) AllowedIps.Insert(prefix, peer);
    }

    /// <summary>Fires every peer's due timers. Call it at least every few hundred milliseconds.</summary>
    public void Tick()
    {
        foreach (var peer in _peers.Values)
        {
            lock (peer.Lock) peer.FireDueTimers();
        }
    }

    /// <summary>The earliest timer deadline of any peer, or null when nothing is pending.</summary>
    public TimeSpan? NextDeadline()
    {
        TimeSpan? next = null;
        foreach (var peer in _peers.Values)
        {
            lock (peer.Lock)
            {
                if (peer.NextDeadline is { } deadline && (next is null || deadline < next)) next = deadline;
            }
        }
        return next;
    }

    public void Dispose() => RemoveAllPeers();

    private bool IsUnderLoad(TimeSpan now)
    {
        if (now - _loadWindowStart >= TimeSpan.FromSeconds(1))
        {
            _loadWindowStart = now;
            _loadWindowCount = 0;
        }
        if (++_loadWindowCount > _options.UnderLoadHandshakesPerSecond) _underLoadUntil = now + UnderLoadHold;
        return _underLoadUntil > now;
    }

    /// <summary>A fresh, unused, non-zero receiver index for the peer's handshake or keypair.</summary>
    private uint AllocateIndex(Peer peer)
    {
        Span<byte> bytes = stackalloc byte[4];
        while (true)
        {
            Entropy.Fill(bytes);
            var index = BitConverter.ToUInt32(bytes);
            if (index != 0 && _indices.TryAdd(index, new IndexEntry(peer, null))) return index;
        }
    }

    internal void ForgetIndex(uint index)
    {
        if (index != 0) _indices.TryRemove(index, out _);
    }

    /// <summary>Drops the index of a handshake in progress (one that did not become a keypair).</summary>
    internal void ForgetHandshakeIndex(Peer peer)
    {
        var index = peer.Handshake.LocalIndex;
        if (index != 0 && _indices.TryGetValue(index, out var entry) && entry.Keypair is null) _indices.TryRemove(index, out _);
    }

    private sealed record IndexEntry(Peer Peer, Keypair? Keypair);
}
