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
        var destination = IpPacket.Destination(packet);
        if (destination.IsEmpty)
        {
            Stats.Drop(DropReason.InvalidInnerPacket);
            return;
        }
        var peer = AllowedIps.Lookup(destination);
        if (peer is null)
        {
            Stats.Drop(DropReason.NoRoute);
            return;
        }
        lock (peer.Lock)
        {
            peer.Stage(packet);
            SendStaged(peer);
        }
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
        var now = Clock.Now;
        var keypair = peer.Current;
        if (keypair is null || keypair.IsExpired(now))
        {
            SendHandshakeInitiation(peer, isRetry: false);
            return;
        }
        if (!peer.TryGetEndpoint(out var endpoint))
        {
            Stats.Drop(DropReason.NoEndpoint);
            return;
        }

        while (peer.TryUnstage(out var packet, out var length))
        {
            if (!keypair.TryTakeSendCounter(out var counter))
            {
                peer.Restage(packet, length);
                SendHandshakeInitiation(peer, isRetry: false);
                return;
            }
            var padded = length + PaddingSize(length, Mtu);
            var datagramLength = TransportHeaderSize + padded + Crypto.Aead.TagSize;
            var datagram = ArrayPool<byte>.Shared.Rent(datagramLength);
            try
            {
                var span = datagram.AsSpan(0, datagramLength);
                WriteHeader(span, MessageType.Transport);
                BinaryPrimitives.WriteUInt32LittleEndian(span[TransportReceiver..], keypair.RemoteIndex);
                BinaryPrimitives.WriteUInt64LittleEndian(span[TransportCounter..], counter);
                var body = span.Slice(TransportHeaderSize, padded);
                packet.AsSpan(0, length).CopyTo(body);
                body[length..].Clear();
                if (!keypair.Seal(counter, body, span[TransportHeaderSize..])) continue;
                _sink.SendDatagram(span, endpoint);
                peer.AddTx(datagramLength);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(datagram);
                ArrayPool<byte>.Shared.Return(packet);
            }
            peer.TimersAnyAuthenticatedPacketTraversal();
            peer.TimersAnyAuthenticatedPacketSent();
            if (length > 0) peer.TimersDataSent();
        }
        if (peer.ShouldRekeyOnSend(keypair)) SendHandshakeInitiation(peer, isRetry: false);
    }

    private void ReceiveTransport(ReadOnlySpan<byte> datagram, NetEndpoint from)
    {
        if (datagram.Length < KeepaliveSize)
        {
            Stats.Drop(DropReason.TooShort);
            return;
        }
        var receiver = ReadUInt32(datagram, TransportReceiver);
        var counter = BinaryPrimitives.ReadUInt64LittleEndian(datagram[TransportCounter..]);
        if (!_indices.TryGetValue(receiver, out var entry) || entry.Keypair is not { } keypair)
        {
            Stats.Drop(DropReason.UnknownIndex);
            return;
        }
        if (keypair.IsExpired(Clock.Now))
        {
            Stats.Drop(DropReason.KeypairExpired);
            return;
        }

        var length = datagram.Length - TransportHeaderSize - Crypto.Aead.TagSize;
        var plaintext = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        try
        {
            if (!keypair.Open(counter, datagram[TransportHeaderSize..], plaintext))
            {
                Stats.Drop(DropReason.AuthenticationFailed);
                return;
            }
            DeliverDecrypted(keypair, counter, plaintext.AsSpan(0, length), datagram.Length, from);
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
