using System.Security.Cryptography;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Relay;

public interface IRelayOutput
{
    void Send(ReadOnlySpan<byte> frame, NetEndpoint to);
}

public sealed class RelayLimits
{
    /// <summary>The largest payload forwarded: a WireGuard packet of a 1500-byte MTU with room to spare.</summary>
    public int MaxPayload { get; init; } = 2048;

    /// <summary>Sustained forwarding rate per node (default 100 Mbit/s).</summary>
    public long BytesPerSecond { get; init; } = 12_500_000;

    public long BurstBytes { get; init; } = 2_000_000;

    /// <summary>A client silent for this long is forgotten; clients refresh well within it.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(60);
}

public enum RelayDrop
{
    Malformed,
    NotRegistered,
    BadCookie,
    BadMac,
    NotAuthenticated,
    TooBig,
    RateLimited,
    NoSuchDestination,
}

/// <summary>
/// A bounce node without I/O: authenticates clients by node key (a cookie bound to the client's address,
/// then a MAC only the node's private key can make), and forwards payloads between authenticated,
/// registered nodes by key, within per-node size and rate limits. Addresses are opaque endpoints, so one
/// instance serves UDP clients and stream clients (each stream stands for one endpoint). Not thread-safe.
/// </summary>
public sealed class RelayServer
{
    private static ReadOnlySpan<byte> AuthLabel => "mesh relay v1"u8;
    private static readonly TimeSpan CookieSecretLifetime = TimeSpan.FromMinutes(2);

    private readonly PrivateKey _key;
    private readonly Func<PublicKey, bool> _isRegistered;
    private readonly IEntropy _entropy;
    private readonly RelayLimits _limits;
    private readonly Dictionary<NodeKeyId, Client> _byKey = new();
    private readonly Dictionary<NetEndpoint, Client> _byEndpoint = new();
    private readonly long[] _drops = new long[Enum.GetValues<RelayDrop>().Length];
    private readonly byte[] _buffer = new byte[64 * 1024];
    private readonly byte[] _cookieSecret = new byte[32];
    private readonly byte[] _previousCookieSecret = new byte[32];
    private TimeSpan _cookieSecretBorn = TimeSpan.MinValue;
    private TimeSpan _lastSweep;

    public RelayServer(PrivateKey key, Func<PublicKey, bool> isRegistered, IEntropy? entropy = null, RelayLimits? limits = null)
    {
        _key = key;
        _isRegistered = isRegistered;
        _entropy = entropy ?? SystemEntropy.Instance;
        _limits = limits ?? new RelayLimits();
    }

    public PublicKey PublicKey => _key.PublicKey;
    public int Clients => _byKey.Count;
    public long Forwarded { get; private set; }
    public long ForwardedBytes { get; private set; }
    public long Dropped(RelayDrop reason) => _drops[(int)reason];

    public long TotalDropped
    {
        get
        {
            long total = 0;
            foreach (var count in _drops) total += count;
            return total;
        }
    }

    public void Receive(ReadOnlySpan<byte> frame, NetEndpoint from, TimeSpan now, IRelayOutput output)
    {
        if (!RelayFrame.LooksLikeRelay(frame) || !RelayFrame.HasValidLength(frame))
        {
            Drop(RelayDrop.Malformed);
            return;
        }
        Sweep(now);
        switch (RelayFrame.TypeOf(frame))
        {
            case RelayFrameType.Hello:
                OnHello(frame, from, now, output);
                break;
            case RelayFrameType.Auth:
                OnAuth(frame, from, now, output);
                break;
            case RelayFrameType.Send:
                OnSend(frame, from, now, output);
                break;
            default:
                Drop(RelayDrop.Malformed);
                break;
        }
    }

    /// <summary>Drops a node's binding (it was deleted or expired).</summary>
    public void Forget(PublicKey node)
    {
        if (_byKey.Remove(NodeKeyId.From(node), out var client)) _byEndpoint.Remove(client.Endpoint);
    }

    /// <summary>Whether a client proved its node key from this endpoint.</summary>
    public bool IsAuthenticated(NetEndpoint endpoint) => _byEndpoint.ContainsKey(endpoint);

    /// <summary>Drops whoever is bound to this endpoint (its stream closed).</summary>
    public void Disconnected(NetEndpoint endpoint)
    {
        if (_byEndpoint.Remove(endpoint, out var client)) _byKey.Remove(client.Id);
    }

    private void OnHello(ReadOnlySpan<byte> frame, NetEndpoint from, TimeSpan now, IRelayOutput output)
    {
        var key = new PublicKey(RelayFrame.NodeKey(frame));
        if (!_isRegistered(key))
        {
            Drop(RelayDrop.NotRegistered);
            output.Send(_buffer.AsSpan(0, RelayFrame.WriteRefused(_buffer, RelayRefusal.NotRegistered)), from);
            return;
        }
        RotateCookieSecret(now);
        var reply = _buffer.AsSpan(0, RelayFrame.ChallengeSize);
        RelayFrame.WriteHeader(reply, RelayFrameType.Challenge);
        ComputeCookie(reply[RelayFrame.HeaderSize..], _cookieSecret, from, key);
        output.Send(reply, from);
    }

    private void OnAuth(ReadOnlySpan<byte> frame, NetEndpoint from, TimeSpan now, IRelayOutput output)
    {
        var key = new PublicKey(RelayFrame.NodeKey(frame));
        Span<byte> expected = stackalloc byte[RelayFrame.CookieSize];
        var cookie = RelayFrame.Cookie(frame);
        ComputeCookie(expected, _cookieSecret, from, key);
        var fresh = CryptographicOperations.FixedTimeEquals(expected, cookie);
        ComputeCookie(expected, _previousCookieSecret, from, key);
        if (!fresh && !CryptographicOperations.FixedTimeEquals(expected, cookie))
        {
            Drop(RelayDrop.BadCookie);
            return;
        }
        if (!_isRegistered(key))
        {
            Drop(RelayDrop.NotRegistered);
            output.Send(_buffer.AsSpan(0, RelayFrame.WriteRefused(_buffer, RelayRefusal.NotRegistered)), from);
            return;
        }
        if (!VerifyAuthMac(frame, key))
        {
            Drop(RelayDrop.BadMac);
            return;
        }
        var id = NodeKeyId.From(key);
        if (_byKey.Remove(id, out var previous)) _byEndpoint.Remove(previous.Endpoint);
        if (_byEndpoint.Remove(from, out var other)) _byKey.Remove(other.Id);
        var client = new Client(key, from, now, _limits.BurstBytes);
        _byKey[id] = client;
        _byEndpoint[from] = client;
        output.Send(_buffer.AsSpan(0, RelayFrame.WriteHeader(_buffer, RelayFrameType.Ready)), from);
    }

    private void OnSend(ReadOnlySpan<byte> frame, NetEndpoint from, TimeSpan now, IRelayOutput output)
    {
        if (!_byEndpoint.TryGetValue(from, out var sender) || !_isRegistered(sender.Key))
        {
            Drop(RelayDrop.NotAuthenticated);
            output.Send(_buffer.AsSpan(0, RelayFrame.WriteRefused(_buffer, RelayRefusal.NotAuthenticated)), from);
            return;
        }
        sender.LastSeen = now;
        var payload = RelayFrame.Payload(frame);
        if (payload.Length > _limits.MaxPayload)
        {
            Drop(RelayDrop.TooBig);
            return;
        }
        if (!sender.TryTake(payload.Length, now, _limits))
        {
            Drop(RelayDrop.RateLimited);
            return;
        }
        if (!_byKey.TryGetValue(NodeKeyId.From(RelayFrame.NodeKey(frame)), out var destination) || !_isRegistered(destination.Key))
        {
            Drop(RelayDrop.NoSuchDestination);
            return;
        }
        var length = RelayFrame.WriteForward(_buffer, RelayFrameType.Receive, sender.Key.Span, payload);
        output.Send(_buffer.AsSpan(0, length), destination.Endpoint);
        Forwarded++;
        ForwardedBytes += payload.Length;
    }

    private bool VerifyAuthMac(ReadOnlySpan<byte> frame, PublicKey key)
    {
        var macKey = PairKey.Derive(_key, key, AuthLabel);
        if (macKey is null) return false;
        Span<byte> mac = stackalloc byte[RelayFrame.MacSize];
        Blake2s.Mac(mac, macKey, frame[..^RelayFrame.MacSize]);
        return CryptographicOperations.FixedTimeEquals(mac, frame[^RelayFrame.MacSize..]);
    }

    /// <summary>The client's side of <see cref="VerifyAuthMac"/>: completes an Auth frame whose key and cookie are written.</summary>
    public static bool SignAuth(Span<byte> frame, PrivateKey client, PublicKey relay)
    {
        var macKey = PairKey.Derive(client, relay, AuthLabel);
        if (macKey is null) return false;
        Blake2s.Mac(frame[^RelayFrame.MacSize..], macKey, frame[..^RelayFrame.MacSize]);
        return true;
    }

    private static void ComputeCookie(Span<byte> cookie, byte[] secret, NetEndpoint from, PublicKey key)
    {
        Span<byte> input = stackalloc byte[18 + RelayFrame.KeySize];
        from.WriteMappedAddress(input);
        input[16] = (byte)(from.Port >> 8);
        input[17] = (byte)from.Port;
        key.Span.CopyTo(input[18..]);
        Blake2s.Mac(cookie, secret, input);
    }

    private void RotateCookieSecret(TimeSpan now)
    {
        if (_cookieSecretBorn != TimeSpan.MinValue && now - _cookieSecretBorn < CookieSecretLifetime) return;
        _cookieSecret.CopyTo(_previousCookieSecret, 0);
        _entropy.Fill(_cookieSecret);
        _cookieSecretBorn = now;
    }

    private void Sweep(TimeSpan now)
    {
        if (now - _lastSweep < TimeSpan.FromSeconds(5)) return;
        _lastSweep = now;
        List<Client>? idle = null;
        foreach (var client in _byKey.Values)
        {
            if (now - client.LastSeen > _limits.IdleTimeout) (idle ??= new()).Add(client);
        }
        if (idle is null) return;
        foreach (var client in idle) Forget(client.Key);
    }

    private void Drop(RelayDrop reason) => _drops[(int)reason]++;

    private sealed class Client(PublicKey key, NetEndpoint endpoint, TimeSpan now, long burst)
    {
        public PublicKey Key { get; } = key;
        public NodeKeyId Id { get; } = NodeKeyId.From(key);
        public NetEndpoint Endpoint { get; } = endpoint;
        public TimeSpan LastSeen { get; set; } = now;
        private double _tokens = burst;
        private TimeSpan _refilled = now;

        public bool TryTake(int bytes, TimeSpan now, RelayLimits limits)
        {
            _tokens = Math.Min(limits.BurstBytes, _tokens + (now - _refilled).TotalSeconds * limits.BytesPerSecond);
            _refilled = now;
            if (_tokens < bytes) return false;
            _tokens -= bytes;
            return true;
        }
    }
}
