using Mesh.WireGuard.Noise;
using static Mesh.WireGuard.Noise.MessageLayout;

namespace Mesh.WireGuard.Core;

/// <summary>Handshake messages: initiations, responses and cookie replies, with mac1 always and cookies under load.</summary>
public sealed partial class Device
{
    /// <summary>Sends an initiation unless one went out within RekeyTimeout. Called under the peer's lock.</summary>
    internal void SendHandshakeInitiation(Peer peer, bool isRetry)
    {
        if (!isRetry) peer.HandshakeAttempts = 0;
        if (_identity is not { } identity)
        {
            Stats.Drop(DropReason.NoPrivateKey);
            return;
        }
        if (peer.HandshakeRecentlySent) return;
        peer.OnHandshakeSent();
        if (!peer.TryGetEndpoint(out var endpoint))
        {
            // Keep retrying: an endpoint may be learned (or configured) before the attempts run out.
            Stats.Drop(DropReason.NoEndpoint);
            peer.TimersHandshakeInitiated();
            return;
        }

        ForgetHandshakeIndex(peer);
        var index = AllocateIndex(peer);
        Span<byte> message = stackalloc byte[InitiationSize];
        if (!NoiseProtocol.CreateInitiation(identity, peer.Handshake, index, Clock.UtcNow, Entropy, message))
        {
            ForgetIndex(index);
            Stats.Drop(DropReason.HandshakeRejected);
            return;
        }
        peer.Cookies.AddMacs(message, Clock.Now);
        peer.TimersAnyAuthenticatedPacketTraversal();
        peer.TimersAnyAuthenticatedPacketSent();
        peer.AddTx(message.Length);
        _sink.SendDatagram(message, endpoint);
        peer.TimersHandshakeInitiated();
    }

    private void ReceiveInitiation(ReadOnlySpan<byte> message, NetEndpoint from)
    {
        if (message.Length != InitiationSize)
        {
            Stats.Drop(DropReason.WrongSize);
            return;
        }
        if (!PassesMacsAndLoadChecks(message, from, out var identity)) return;
        var now = Clock.Now;
        Span<byte> hash = stackalloc byte[32];
        Span<byte> chainingKey = stackalloc byte[32];
        Span<byte> remoteStatic = stackalloc byte[32];
        var error = NoiseProtocol.OpenInitiation(identity, message, hash, chainingKey, remoteStatic);
        var peer = error == HandshakeError.None ? _peers.GetValueOrDefault(new Keys.PublicKey(remoteStatic)) : null;
        if (peer is null)
        {
            Stats.Drop(DropReason.HandshakeRejected);
            return;
        }
        lock (peer.Lock)
        {
            error = NoiseProtocol.AcceptInitiation(peer.Handshake, message, now, hash, chainingKey);
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(chainingKey);
            if (error != HandshakeError.None)
            {
                Stats.Drop(error is HandshakeError.ReplayedTimestamp or HandshakeError.InitiationFlood ? DropReason.ReplayedInitiation : DropReason.HandshakeRejected);
                return;
            }
            peer.UpdateEndpoint(from);
            peer.TimersAnyAuthenticatedPacketTraversal();
            peer.TimersAnyAuthenticatedPacketReceived();

            ForgetHandshakeIndex(peer);
            var index = AllocateIndex(peer);
            Span<byte> response = stackalloc byte[ResponseSize];
            if (!NoiseProtocol.CreateResponse(peer.Handshake, index, Entropy, response) || DeriveKeypair(peer, index) is not { } keypair)
            {
                ForgetIndex(index);
                Stats.Drop(DropReason.HandshakeRejected);
                return;
            }
            peer.Cookies.AddMacs(response, now);
            peer.InstallKeypair(keypair);
            Stats.HandshakeCompleted();
            peer.TimersSessionDerived();
            peer.TimersAnyAuthenticatedPacketTraversal();
            peer.TimersAnyAuthenticatedPacketSent();
            peer.AddTx(response.Length);
            _sink.SendDatagram(response, from);
        }
    }

    private void ReceiveResponse(ReadOnlySpan<byte> message, NetEndpoint from)
    {
        if (message.Length != ResponseSize)
        {
            Stats.Drop(DropReason.WrongSize);
            return;
        }
        if (!PassesMacsAndLoadChecks(message, from, out var identity)) return;
        var receiver = ReadUInt32(message, ResponseReceiver);
        if (!_indices.TryGetValue(receiver, out var entry) || entry.Keypair is not null)
        {
            Stats.Drop(DropReason.UnknownIndex);
            return;
        }
        var peer = entry.Peer;
        lock (peer.Lock)
        {
            if (peer.Handshake.LocalIndex != receiver || NoiseProtocol.ConsumeResponse(identity, peer.Handshake, message) != HandshakeError.None
                || DeriveKeypair(peer, receiver) is not { } keypair)
            {
                Stats.Drop(DropReason.HandshakeRejected);
                return;
            }
            peer.InstallKeypair(keypair);
            Stats.HandshakeCompleted();
            peer.UpdateEndpoint(from);
            peer.TimersSessionDerived();
            peer.TimersHandshakeComplete();
            peer.TimersAnyAuthenticatedPacketTraversal();
            peer.TimersAnyAuthenticatedPacketReceived();
            // Confirms the session to the responder at once: staged data if any, else a keepalive.
            SendKeepalive(peer);
        }
    }

    private void ReceiveCookieReply(ReadOnlySpan<byte> message)
    {
        if (message.Length != CookieReplySize)
        {
            Stats.Drop(DropReason.WrongSize);
            return;
        }
        if (!_indices.TryGetValue(ReadUInt32(message, CookieReceiver), out var entry))
        {
            Stats.Drop(DropReason.UnknownIndex);
            return;
        }
        lock (entry.Peer.Lock)
        {
            // The retransmission timer resends the initiation, now with mac2.
            if (!entry.Peer.Cookies.ConsumeReply(message, Clock.Now)) Stats.Drop(DropReason.BadCookieReply);
        }
    }

    /// <summary>
    /// mac1 always; under load, mac2 (else a cookie reply goes back) and the per-source rate limit. Safe on any
    /// number of threads: the load state, the cookie secret and the limiter share one short lock.
    /// </summary>
    private bool PassesMacsAndLoadChecks(ReadOnlySpan<byte> message, NetEndpoint from, out LocalIdentity identity)
    {
        var (local, checker) = (_identity, _cookieChecker);
        identity = local!;
        if (local is null || checker is null)
        {
            Stats.Drop(DropReason.NoPrivateKey);
            return false;
        }
        if (!checker.CheckMac1(message))
        {
            Stats.Drop(DropReason.BadMac1);
            return false;
        }
        var now = Clock.Now;
        Span<byte> reply = stackalloc byte[CookieReplySize];
        lock (_loadLock)
        {
            if (!IsUnderLoad(now)) return true;
            if (!checker.CheckMac2(message, from, now))
            {
                checker.CreateReply(message, from, now, reply);
            }
            else if (!_rateLimiter.Allow(from, now))
            {
                Stats.Drop(DropReason.RateLimited);
                return false;
            }
            else
            {
                return true;
            }
        }
        _sink.SendDatagram(reply, from);
        Stats.CookieReplySent();
        return false;
    }

    private Keypair? DeriveKeypair(Peer peer, uint localIndex)
    {
        Span<byte> sendKey = stackalloc byte[32];
        Span<byte> receiveKey = stackalloc byte[32];
        var remoteIndex = peer.Handshake.RemoteIndex;
        if (!NoiseProtocol.DeriveTransportKeys(peer.Handshake, sendKey, receiveKey, out var isInitiator)) return null;
        var keypair = new Keypair(peer, sendKey, receiveKey, isInitiator, localIndex, remoteIndex, Clock.Now);
        sendKey.Clear();
        receiveKey.Clear();
        _indices[localIndex] = new IndexEntry(peer, keypair);
        return keypair;
    }
}
