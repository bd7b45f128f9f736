using Mesh.WireGuard.Keys;

namespace Mesh.Traversal.Relay;

/// <summary>
/// An agent's session with one bounce node, without I/O: Hello, the relay's address-bound challenge, Auth,
/// Ready; retried every second until ready and refreshed every ten, which also keeps the NAT mapping to
/// the relay open. The relay counts as alive while its Ready answers keep coming. Not thread-safe.
/// </summary>
public sealed class RelayClient(string id, PublicKey relayKey, PrivateKey local)
{
    public static readonly TimeSpan Retry = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan Refresh = TimeSpan.FromSeconds(10);
    /// <summary>How long after a due refresh an unanswered relay still counts as alive.</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(3);

    private TimeSpan? _lastHello;
    private TimeSpan? _lastReady;

    public string Id { get; } = id;
    public PublicKey RelayKey { get; } = relayKey;
    public RelayRefusal? LastRefusal { get; private set; }

    public bool IsAlive(TimeSpan now) => _lastReady is { } ready && now - ready < Refresh + Grace;

    /// <summary>Forgets the session, so the next poll starts a new one (the network changed, the relay refused us).</summary>
    public void Reset()
    {
        _lastReady = null;
        _lastHello = null;
    }

    /// <summary>Writes a Hello when one is due; returns its length or 0.</summary>
    public int Poll(TimeSpan now, Span<byte> output)
    {
        if (_lastReady is { } ready && now - ready < Refresh) return 0;
        if (_lastHello is { } hello && now - hello < Retry) return 0;
        _lastHello = now;
        return RelayFrame.WriteHello(output, local.PublicKey);
    }

    /// <summary>Takes a Challenge, Ready or Refused frame from the relay; returns the length of a reply to send (an Auth), or 0.</summary>
    public int OnControl(ReadOnlySpan<byte> frame, TimeSpan now, Span<byte> reply)
    {
        switch (RelayFrame.TypeOf(frame))
        {
            case RelayFrameType.Challenge:
                var auth = reply[..RelayFrame.AuthSize];
                RelayFrame.WriteHeader(auth, RelayFrameType.Auth);
                local.PublicKey.Span.CopyTo(auth[RelayFrame.HeaderSize..]);
                RelayFrame.Cookie(frame).CopyTo(auth[(RelayFrame.HeaderSize + RelayFrame.KeySize)..]);
                return RelayServer.SignAuth(auth, local, RelayKey) ? auth.Length : 0;
            case RelayFrameType.Ready:
                _lastReady = now;
                LastRefusal = null;
                return 0;
            case RelayFrameType.Refused:
                LastRefusal = RelayFrame.Refusal(frame);
                // Not authenticated any more (the relay restarted, or our address changed): log in again now.
                if (LastRefusal == RelayRefusal.NotAuthenticated) Reset();
                return 0;
            default:
                return 0;
        }
    }
}
