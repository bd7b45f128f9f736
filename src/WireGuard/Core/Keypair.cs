using System.Security.Cryptography;
using Mesh.WireGuard.Crypto;
using Mesh.WireGuard.Replay;

namespace Mesh.WireGuard.Core;

/// <summary>
/// The transport keys of one completed handshake. Sealing and opening are safe from many threads at once
/// (each takes a cipher from a small pool); counters and the replay window are the owner peer's business.
/// </summary>
public sealed class Keypair : IDisposable
{
    private readonly AeadPool _send;
    private readonly AeadPool _receive;
    private long _nextSendCounter;

    internal Keypair(Peer peer, ReadOnlySpan<byte> sendKey, ReadOnlySpan<byte> receiveKey, bool isInitiator, uint localIndex, uint remoteIndex, TimeSpan created)
    {
        Peer = peer;
        _send = new AeadPool(sendKey);
        _receive = new AeadPool(receiveKey);
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
    public bool Seal(ulong counter, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        var aead = _send.Rent();
        if (aead is null) return false;
        aead.Seal(counter, plaintext, ReadOnlySpan<byte>.Empty, output);
        _send.Return(aead);
        return true;
    }

    public bool Open(ulong counter, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        var aead = _receive.Rent();
        if (aead is null) return false;
        var ok = aead.Open(counter, ciphertext, ReadOnlySpan<byte>.Empty, plaintext);
        _receive.Return(aead);
        return ok;
    }

    public void Dispose()
    {
        _send.Dispose();
        _receive.Dispose();
    }

    /// <summary>Cipher instances for one key, lent out without locks or allocation once warm.</summary>
    private sealed class AeadPool : IDisposable
    {
        private readonly byte[] _key;
        private readonly Aead?[] _slots = new Aead?[Math.Max(2, Environment.ProcessorCount * 2)];
        private volatile bool _disposed;

        public AeadPool(ReadOnlySpan<byte> key) => _key = key.ToArray();

        public Aead? Rent()
        {
            if (_disposed) return null;
            for (var i = 0; i < _slots.Length; i++)
            {
                var aead = Interlocked.Exchange(ref _slots[i], null);
                if (aead is not null) return aead;
            }
            return new Aead(_key);
        }

        public void Return(Aead aead)
        {
            if (!_disposed)
            {
                for (var i = 0; i < _slots.Length; i++)
                {
                    if (Interlocked.CompareExchange(ref _slots[i], aead, null) is null) return;
                }
            }
            aead.Dispose();
        }

        public void Dispose()
        {
            _disposed = true;
            CryptographicOperations.ZeroMemory(_key);
            for (var i = 0; i < _slots.Length; i++) Interlocked.Exchange(ref _slots[i], null)?.Dispose();
        }
    }
}
