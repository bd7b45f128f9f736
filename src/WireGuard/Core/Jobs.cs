using Mesh.WireGuard.Noise;

namespace Mesh.WireGuard.Core;

/// <summary>A packet with a reserved counter on a session, waiting to be sealed and sent.</summary>
public readonly record struct OutboundJob(Peer Peer, Keypair Keypair, ulong Counter, NetEndpoint Endpoint, int PacketLength, int PaddedLength)
{
    public int DatagramLength => MessageLayout.TransportHeaderSize + PaddedLength + Crypto.Aead.TagSize;
}

/// <summary>A transport datagram of a known session, waiting to be decrypted and delivered.</summary>
public readonly record struct InboundJob(Keypair Keypair, ulong Counter, NetEndpoint From, int DatagramLength)
{
    public Peer Peer => Keypair.Peer;
    public int PlaintextLength => DatagramLength - MessageLayout.TransportHeaderSize - Crypto.Aead.TagSize;
}
