using System.Buffers;
using Mesh.WireGuard.Cookies;
using Mesh.WireGuard.Keys;
using Mesh.WireGuard.Noise;

namespace Mesh.WireGuard.Core;

/// <summary>One WireGuard peer: its handshake, keypairs, staged packets, timers and counters. All state is guarded by <see cref="Lock"/>.</summary>
public sealed partial class Peer
{
    private readonly Device _device;
    private readonly Queue<(byte[] Buffer, int Length)> _staged = new();

    internal Peer(Device device, PublicKey publicKey)
    {
        _device = device;
        PublicKey = publicKey;
        Handshake = new Handshake(publicKey);
        Cookies = new CookieGenerator(publicKey);
    }

    public PublicKey PublicKey { get; }
    internal Handshake Handshake { get; }
    internal CookieGenerator Cookies { get; }
    internal object Lock { get; } = new();

    internal Keypair? Current { get; private set; }
    internal Keypair? Previous { get; private set; }
    internal Keypair? Next { get; private set; }

    private NetEndpoint _endpoint;
    private bool _hasEndpoint;
    private long _rxBytes;
    private long _txBytes;
    private long _lastHandshakeTicks;

    /// <summary>Where packets for the peer go: configured, then following the source of its latest authenticated packet.</summary>
    public NetEndpoint? Endpoint
    {
        get
        {
            lock (Lock) return _hasEndpoint ? _endpoint : null;
        }
        set
        {
            lock (Lock)
            {
                _hasEndpoint = value.HasValue;
                _endpoint = value.GetValueOrDefault();
            }
        }
    }

    public TimeSpan PersistentKeepalive { get; internal set; }

    /// <summary>
    /// Whether the endpoint follows the source of authenticated packets. A mesh turns it off and sets an
    /// endpoint that stands for the peer itself, so its path engine chooses where each packet goes.
    /// </summary>
    public bool Roams { get; set; } = true;

    /// <summary>The preshared key in hex for the UAPI (all zeros when none is set).</summary>
    internal string PresharedKeyHex
    {
        get
        {
            lock (Lock) return Convert.ToHexStringLower(Handshake.PresharedKey);
        }
    }
    public long RxBytes => Interlocked.Read(ref _rxBytes);
    public long TxBytes => Interlocked.Read(ref _txBytes);

    /// <summary>Wall time of the latest completed handshake, null before the first.</summary>
    public DateTime? LatestHandshake
    {
        get
        {
            var ticks = Interlocked.Read(ref _lastHandshakeTicks);
            return ticks == 0 ? null : new DateTime(ticks, DateTimeKind.Utc);
        }
    }

    public int StagedPackets
    {
        get
        {
            lock (Lock) return _staged.Count;
        }
    }

    /// <summary>True when a current keypair can carry data now.</summary>
    public bool HasSession
    {
        get
        {
            lock (Lock) return Current is { } current && !current.IsExpired(_device.Clock.Now);
        }
    }

    internal void AddRx(int bytes) => Interlocked.Add(ref _rxBytes, bytes);
    internal void AddTx(int bytes) => Interlocked.Add(ref _txBytes, bytes);

    /// <summary>Follows the peer to the address its latest authenticated packet came from (roaming).</summary>
    internal void UpdateEndpoint(NetEndpoint from)
    {
        if (!Roams && _hasEndpoint) return;
        _endpoint = from;
        _hasEndpoint = true;
    }

    internal bool TryGetEndpoint(out NetEndpoint endpoint)
    {
        endpoint = _endpoint;
        return _hasEndpoint;
    }

    internal void Stage(ReadOnlySpan<byte> packet)
    {
        if (_staged.Count >= ProtocolConstants.MaxStagedPackets)
        {
            // The oldest packet is the least useful one by the time a session exists.
            var (oldest, _) = _staged.Dequeue();
            ArrayPool<byte>.Shared.Return(oldest);
            _device.Stats.Drop(DropReason.StagedQueueFull);
        }
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(packet.Length, 1));
        packet.CopyTo(buffer);
        _staged.Enqueue((buffer, packet.Length));
    }

    internal bool TryUnstage(out byte[] buffer, out int length)
    {
        if (_staged.TryDequeue(out var item))
        {
            (buffer, length) = item;
            return true;
        }
        buffer = null!;
        length = 0;
        return false;
    }

    /// <summary>Puts a packet back at the head of the queue (it could not be sent after all).</summary>
    internal void Restage(byte[] buffer, int length)
    {
        var rest = _staged.ToArray();
        _staged.Clear();
        _staged.Enqueue((buffer, length));
        foreach (var item in rest) _staged.Enqueue(item);
    }

    internal void DropStaged()
    {
        while (_staged.TryDequeue(out var item)) ArrayPool<byte>.Shared.Return(item.Buffer);
    }

    /// <summary>A new session: the initiator uses it at once; the responder keeps it as "next" until the initiator's first packet.</summary>
    internal void InstallKeypair(Keypair keypair)
    {
        if (keypair.IsInitiator)
        {
            if (Next is not null)
            {
                Retire(Previous);
                Previous = Next;
                Next = null;
            }
            else
            {
                Retire(Previous);
                Previous = Current;
            }
            Current = keypair;
        }
        else
        {
            Retire(Next);
            Next = keypair;
            Retire(Previous);
            Previous = null;
        }
        Interlocked.Exchange(ref _lastHandshakeTicks, _device.Clock.UtcNow.Ticks);
    }

    /// <summary>The initiator's first packet on "next" confirms it: it becomes current.</summary>
    internal bool ConfirmNext(Keypair keypair)
    {
        if (!ReferenceEquals(Next, keypair)) return false;
        Retire(Previous);
        Previous = Current;
        Current = Next;
        Next = null;
        return true;
    }

    internal void ZeroKeyMaterial()
    {
        Retire(Previous);
        Retire(Current);
        Retire(Next);
        Previous = Current = Next = null;
        _device.ForgetHandshakeIndex(this);
        Handshake.Clear();
    }

    private void Retire(Keypair? keypair)
    {
        if (keypair is null) return;
        _device.ForgetIndex(keypair.LocalIndex);
        keypair.Dispose();
    }
}
