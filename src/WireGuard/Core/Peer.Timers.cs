namespace Mesh.WireGuard.Core;

/// <summary>
/// The protocol's timers as deadlines on the monotonic clock (the events and expiries of wireguard-go's
/// timers.go). Events set or clear deadlines; <see cref="FireDueTimers"/> acts on those that passed.
/// Everything here runs under the peer's lock.
/// </summary>
public sealed partial class Peer
{
    private TimeSpan? _retransmitHandshakeAt;
    private TimeSpan? _sendKeepaliveAt;
    private TimeSpan? _newHandshakeAt;
    private TimeSpan? _zeroKeyMaterialAt;
    private TimeSpan? _persistentKeepaliveAt;
    private bool _needAnotherKeepalive;
    private bool _sentLastMinuteHandshake;
    private TimeSpan? _lastSentHandshake;

    internal int HandshakeAttempts { get; set; }

    private TimeSpan Now => _device.Clock.Now;

    private TimeSpan Jitter() => TimeSpan.FromTicks(_device.Entropy.NextInt((int)ProtocolConstants.RekeyTimeoutJitterMax.Ticks));

    /// <summary>An initiation went out less than RekeyTimeout ago: do not send another yet.</summary>
    internal bool HandshakeRecentlySent => _lastSentHandshake is { } last && Now - last < ProtocolConstants.RekeyTimeout;

    internal void OnHandshakeSent() => _lastSentHandshake = Now;

    /// <summary>How long ago the latest initiation went out; null when none has.</summary>
    internal TimeSpan? HandshakeSentAge => _lastSentHandshake is { } last ? Now - last : null;

    internal void ForgetHandshakeSent() => _lastSentHandshake = null;

    internal void TimersDataSent()
    {
        _newHandshakeAt ??= Now + ProtocolConstants.KeepaliveTimeout + ProtocolConstants.RekeyTimeout + Jitter();
    }

    internal void TimersDataReceived()
    {
        if (_sendKeepaliveAt is null) _sendKeepaliveAt = Now + ProtocolConstants.KeepaliveTimeout;
        else _needAnotherKeepalive = true;
    }

    internal void TimersAnyAuthenticatedPacketSent() => _sendKeepaliveAt = null;

    internal void TimersAnyAuthenticatedPacketReceived() => _newHandshakeAt = null;

    internal void TimersHandshakeInitiated() => _retransmitHandshakeAt = Now + ProtocolConstants.RekeyTimeout + Jitter();

    internal void TimersHandshakeComplete()
    {
        _retransmitHandshakeAt = null;
        HandshakeAttempts = 0;
        _sentLastMinuteHandshake = false;
    }

    internal void TimersSessionDerived() => _zeroKeyMaterialAt = Now + ProtocolConstants.ZeroKeyMaterialAfter;

    internal void TimersAnyAuthenticatedPacketTraversal()
    {
        if (PersistentKeepalive > TimeSpan.Zero) _persistentKeepaliveAt = Now + PersistentKeepalive;
    }

    /// <summary>Receiving on a session we initiated that nears its end: rekey once before it is rejected.</summary>
    internal bool ShouldRekeyOnReceive()
    {
        if (_sentLastMinuteHandshake || Current is not { IsInitiator: true } current) return false;
        if (Now - current.Created <= ProtocolConstants.RejectAfterTime - ProtocolConstants.KeepaliveTimeout - ProtocolConstants.RekeyTimeout) return false;
        _sentLastMinuteHandshake = true;
        return true;
    }

    /// <summary>Sending on a session we initiated that is old or has carried too much: rekey.</summary>
    internal bool ShouldRekeyOnSend(Keypair keypair) =>
        keypair.IsInitiator && (keypair.SendCounter > ProtocolConstants.RekeyAfterMessages || Now - keypair.Created > ProtocolConstants.RekeyAfterTime);

    internal void StopTimers()
    {
        _retransmitHandshakeAt = _sendKeepaliveAt = _newHandshakeAt = _zeroKeyMaterialAt = _persistentKeepaliveAt = null;
    }

    /// <summary>The earliest pending deadline, for hosts that sleep until then.</summary>
    internal TimeSpan? NextDeadline => Min(Min(Min(_retransmitHandshakeAt, _sendKeepaliveAt), Min(_newHandshakeAt, _zeroKeyMaterialAt)), _persistentKeepaliveAt);

    internal void FireDueTimers()
    {
        var now = Now;
        if (_retransmitHandshakeAt <= now)
        {
            _retransmitHandshakeAt = null;
            if (HandshakeAttempts > ProtocolConstants.MaxTimerHandshakes)
            {
                // Gave up after RekeyAttemptTime: what waited for the session is dropped.
                DropStaged();
                _zeroKeyMaterialAt ??= now + ProtocolConstants.ZeroKeyMaterialAfter;
            }
            else
            {
                HandshakeAttempts++;
                _device.SendHandshakeInitiation(this, isRetry: true);
            }
        }
        if (_sendKeepaliveAt <= now)
        {
            _sendKeepaliveAt = null;
            _device.SendKeepalive(this);
            if (_needAnotherKeepalive)
            {
                _needAnotherKeepalive = false;
                _sendKeepaliveAt = now + ProtocolConstants.KeepaliveTimeout;
            }
        }
        if (_newHandshakeAt <= now)
        {
            // Data went out but nothing came back for KeepaliveTimeout + RekeyTimeout.
            _newHandshakeAt = null;
            _device.SendHandshakeInitiation(this, isRetry: false);
        }
        if (_zeroKeyMaterialAt <= now)
        {
            _zeroKeyMaterialAt = null;
            ZeroKeyMaterial();
        }
        if (_persistentKeepaliveAt <= now)
        {
            _persistentKeepaliveAt = null;
            if (PersistentKeepalive > TimeSpan.Zero) _device.SendKeepalive(this);
        }
    }

    private static TimeSpan? Min(TimeSpan? a, TimeSpan? b) => a is null ? b : b is null ? a : a < b ? a : b;
}
