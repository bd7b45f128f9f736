using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Replay;

namespace Mesh.WireGuard.Core;

/// <summary>
/// The transport keys of one completed handshake. Sealing and opening are safe from many threads at once;
/// counters and the replay window are the owner peer's business.
/// </summary>
public sealed class Keypair : IDisposable
{
    private readonly TransportAead _send;
    private readonly TransportAead _receive;
    private long _nextSendCounter;

    internal Keypair(Peer peer, ReadOnlySpan<byte> sendKey, ReadOnlySpan<byte> receiveKey, bool isInitiator, uint localIndex, uint remoteIndex, TimeSpan created)
    {
        Peer = peer;
        _send = new TransportAead(sendKey);
        _receive = new TransportAead(receiveKey);
        IsInitiator = isInitiator;
        LocalIndex = localIndex;
        RemoteIndex = remoteIndex;
        Created = created;
    }

    public Peer Peer { get; }
    public bool IsInitiator { get; }
    public uint LocalIndex { get; }
    public uint RemoteIndex { get; }
    public TimeSpan Created { get; }
    internal ReplayWindow Replay { get; } = new();

    public ulong SendCounter => (ulong)Interlocked.Read(ref _nextSendCounter);

    /// <summary>The next counter to send with; false once the keypair has sent all it may.</summary>
    internal bool TryTakeSendCounter(out ulong counter)
    {
        counter = (ulong)Interlocked.Increment(ref _nextSendCounter) - 1;
        return counter < ProtocolConstants.RejectAfterMessages;
    }

    internal bool IsExpired(TimeSpan now) => now - Created >= ProtocolConstants.RejectAfterTime;

    /// <summary>Encrypts a padded plaintext; false if the keypair was wiped meanwhile.</summary>
    public bool Seal(ulong counter, ReadOnlySpan<byte> plaintext, Span<byte> output) => _send.Seal(counter, plaintext, output);

    /// <summary>False when the packet does not authenticate or the keypair was wiped.</summary>
    public bool Open(ulong counter, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext) => _receive.Open(counter, ciphertext, plaintext);

    public void Dispose()
    {
        _send.Dispose();
        _receive.Dispose();
    }
}
