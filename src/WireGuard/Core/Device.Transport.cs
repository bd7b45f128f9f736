using System.Buffers;
using System.Buffers.Binary;
using Mesh.WireGuard.Noise;
using static Mesh.WireGuard.Noise.MessageLayout;

namespace Mesh.WireGuard.Core;

/// <summary>Data: tunnel packets out through sessions (staging them while a handshake runs), datagrams in.</summary>
public sealed partial class Device
{
    /// <summary>A datagram from the network: any of the four message types. Hostile input is dropped and counted.</summary>
    public void ReceiveDatagram(ReadOnlySpan<byte> datagram, NetEndpoint from)
    {
        switch (TypeOf(datagram))
        {
            case MessageType.Initiation:
                ReceiveInitiation(datagram, from);
                break;
            case MessageType.Response:
                ReceiveResponse(datagram, from);
                break;
            case MessageType.CookieReply:
                ReceiveCookieReply(datagram);
                break;
            case MessageType.Transport:
                ReceiveTransport(datagram, from);
                break;
            default:
                Stats.Drop(datagram.Length < 4 ? DropReason.TooShort : DropReason.UnknownMessageType);
                break;
        }
    }

    /// <summary>An IP packet from the tunnel: routed by destination to a peer and sent, or staged until a session exists.</summary>
    public void SendPacket(ReadOnlySpan<byte> packet)
    {
        if (!TryPrepareSend(packet, out var job)) return;
        var datagram = ArrayPool<byte>.Shared.Rent(job.DatagramLength);
        try
        {
            packet.CopyTo(datagram.AsSpan(TransportHeaderSize));
            if (Seal(job, datagram)) _sink.SendDatagram(datagram.AsSpan(0, job.DatagramLength), job.Endpoint);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(datagram);
        }
    }

    /// <summary>
    /// Sending, stage 1 (one thread, in packet order): routes the packet and, when its peer has a session
    /// and nothing waits ahead of it, reserves the next counter. Otherwise the packet is staged (a
    /// handshake starts if needed) or dropped, and the result is false.
    /// </summary>
    public bool TryPrepareSend(ReadOnlySpan<byte> packet, out OutboundJob job)
    {
        job = default;
        var destination = IpPacket.Destination(packet);
        if (destination.IsEmpty)
        {
            Stats.Drop(DropReason.InvalidInnerPacket);
            return false;
        }
        var peer = AllowedIps.Lookup(destination);
        if (peer is null)
        {
            Stats.Drop(DropReason.NoRoute);
            return false;
        }
        _options.Filter?.Opened(packet);
        lock (peer.Lock)
        {
            if (peer.StagedPackets == 0 && TryReserve(peer, packet.Length, out job)) return true;
            peer.Stage(packet);
            SendStaged(peer);
            return false;
        }
    }

    /// <summary>
    /// Sending, stage 2 (any thread): <paramref name="datagram"/> holds the packet at offset 16; writes the
    /// header, pads and encrypts in place. False if the session was wiped meanwhile.
    /// </summary>
    public bool Seal(in OutboundJob job, Span<byte> datagram)
    {
        var span = datagram[..job.DatagramLength];
        WriteHeader(span, MessageType.Transport);
        BinaryPrimitives.WriteUInt32LittleEndian(span[TransportReceiver..], job.Keypair.RemoteIndex);
        BinaryPrimitives.WriteUInt64LittleEndian(span[TransportCounter..], job.Counter);
        var body = span.Slice(TransportHeaderSize, job.PaddedLength);
        body[job.PacketLength..].Clear();
        return job.Keypair.Seal(job.Counter, body, span[TransportHeaderSize..]);
    }

    /// <summary>Reserves a counter on the current session for a packet of this length; timers and counters count it as sent. Under the peer's lock.</summary>
    private bool TryReserve(Peer peer, int packetLength, out OutboundJob job)
    {
        job = default;
        var keypair = peer.Current;
        if (keypair is null || keypair.IsExpired(Clock.Now) || !peer.TryGetEndpoint(out var endpoint)) return false;
        if (!keypair.TryTakeSendCounter(out var counter))
        {
            SendHandshakeInitiation(peer, isRetry: false);
            return false;
        }
        var padded = packetLength + PaddingSize(packetLength, Mtu);
        job = new OutboundJob(peer, keypair, counter, endpoint, packetLength, padded);
        peer.AddTx(job.DatagramLength);
        peer.TimersAnyAuthenticatedPacketTraversal();
        peer.TimersAnyAuthenticatedPacketSent();
        if (packetLength > 0) peer.TimersDataSent();
        if (peer.ShouldRekeyOnSend(keypair)) SendHandshakeInitiation(peer, isRetry: false);
        return true;
    }

    /// <summary>Sends what is staged, or a keepalive (an empty packet) when nothing is. Called under the peer's lock.</summary>
    internal void SendKeepalive(Peer peer)
    {
        if (peer.StagedPackets == 0) peer.Stage(ReadOnlySpan<byte>.Empty);
        SendStaged(peer);
    }

    /// <summary>Encrypts and sends staged packets on the current session, or starts a handshake for one. Called under the peer's lock.</summary>
    internal void SendStaged(Peer peer)
    {
        var keypair = peer.Current;
        if (keypair is null || keypair.IsExpired(Clock.Now))
        {
            SendHandshakeInitiation(peer, isRetry: false);
            return;
        }
        while (peer.TryUnstage(out var packet, out var length))
        {
            if (!TryReserve(peer, length, out var job))
            {
                peer.Restage(packet, length);
                if (!peer.TryGetEndpoint(out _)) Stats.Drop(DropReason.NoEndpoint);
                return;
            }
            var datagram = ArrayPool<byte>.Shared.Rent(job.DatagramLength);
            try
            {
                packet.AsSpan(0, length).CopyTo(datagram.AsSpan(TransportHeaderSize));
                if (Seal(job, datagram)) _sink.SendDatagram(datagram.AsSpan(0, job.DatagramLength), job.Endpoint);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(datagram);
                ArrayPool<byte>.Shared.Return(packet);
            }
        }
    }

    /// <summary>
    /// Receiving, stage 1 (one thread, in arrival order): handshake messages are handled here; a transport
    /// message of a known, unexpired session becomes a job to decrypt. False when nothing is left to do.
    /// </summary>
    public bool TryPrepareReceive(ReadOnlySpan<byte> datagram, NetEndpoint from, out InboundJob job)
    {
        job = default;
        if (TypeOf(datagram) != MessageType.Transport)
        {
            ReceiveDatagram(datagram, from);
            return false;
        }
        if (datagram.Length < KeepaliveSize)
        {
            Stats.Drop(DropReason.TooShort);
            return false;
        }
        var receiver = ReadUInt32(datagram, TransportReceiver);
        if (!_indices.TryGetValue(receiver, out var entry) || entry.Keypair is not { } keypair)
        {
            Stats.Drop(DropReason.UnknownIndex);
            return false;
        }
        if (keypair.IsExpired(Clock.Now))
        {
            Stats.Drop(DropReason.KeypairExpired);
            return false;
        }
        job = new InboundJob(keypair, BinaryPrimitives.ReadUInt64LittleEndian(datagram[TransportCounter..]), from, datagram.Length);
        return true;
    }

    /// <summary>Receiving, stage 2 (any thread): decrypts into <paramref name="plaintext"/> (which may be the ciphertext's own bytes). False, and counted, when it does not authenticate.</summary>
    public bool Open(in InboundJob job, ReadOnlySpan<byte> datagram, Span<byte> plaintext)
    {
        if (job.Keypair.Open(job.Counter, datagram[TransportHeaderSize..job.DatagramLength], plaintext)) return true;
        Stats.Drop(DropReason.AuthenticationFailed);
        return false;
    }

    /// <summary>Receiving, stage 3 (in order per peer): replay check, session confirmation, roaming, timers, routing check, delivery.</summary>
    public void CompleteReceive(in InboundJob job, ReadOnlySpan<byte> plaintext) =>
        DeliverDecrypted(job.Keypair, job.Counter, plaintext[..job.PlaintextLength], job.DatagramLength, job.From);

    private void ReceiveTransport(ReadOnlySpan<byte> datagram, NetEndpoint from)
    {
        if (!TryPrepareReceive(datagram, from, out var job)) return;
        var plaintext = ArrayPool<byte>.Shared.Rent(Math.Max(job.PlaintextLength, 1));
        try
        {
            if (Open(job, datagram, plaintext)) CompleteReceive(job, plaintext);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(plaintext);
        }
    }

    /// <summary>The in-order part of receiving: replay check, session confirmation, roaming, timers, routing check.</summary>
    private void DeliverDecrypted(Keypair keypair, ulong counter, ReadOnlySpan<byte> plaintext, int datagramLength, NetEndpoint from)
    {
        var peer = keypair.Peer;
        lock (peer.Lock)
        {
            if (!keypair.Replay.TryAccept(counter, ProtocolConstants.RejectAfterMessages))
            {
                Stats.Drop(DropReason.ReplayedPacket);
                return;
            }
            peer.UpdateEndpoint(from);
            if (peer.ConfirmNext(keypair))
            {
                peer.TimersHandshakeComplete();
                SendStaged(peer);
            }
            if (peer.ShouldRekeyOnReceive()) SendHandshakeInitiation(peer, isRetry: false);
            peer.TimersAnyAuthenticatedPacketTraversal();
            peer.TimersAnyAuthenticatedPacketReceived();
            peer.AddRx(datagramLength);
            if (plaintext.IsEmpty) return;

            var length = IpPacket.Length(plaintext);
            if (length < 0)
            {
                Stats.Drop(DropReason.InvalidInnerPacket);
                return;
            }
            var packet = plaintext[..length];
            if (!ReferenceEquals(AllowedIps.Lookup(IpPacket.Source(packet)), peer))
            {
                Stats.Drop(DropReason.AllowedIpsMismatch);
                return;
            }
            peer.TimersDataReceived();
            if (_options.Filter is { } filter && !filter.Admits(peer, packet))
            {
                Stats.Drop(DropReason.Filtered);
                return;
            }
            _sink.WriteTunnel(packet);
        }
    }

    /// <summary>Pads to a multiple of 16 without exceeding the MTU (wireguard-go's calculatePaddingSize).</summary>
    internal static int PaddingSize(int length, int mtu)
    {
        const int multiple = ProtocolConstants.PaddingMultiple;
        var lastUnit = length;
        if (mtu == 0) return ((lastUnit + multiple - 1) & ~(multiple - 1)) - lastUnit;
        if (lastUnit > mtu) lastUnit %= mtu;
        var padded = Math.Min((lastUnit + multiple - 1) & ~(multiple - 1), mtu);
        return padded - lastUnit;
    }
}
