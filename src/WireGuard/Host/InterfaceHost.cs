using System.Net;
using Mesh.WireGuard.Conn;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Noise;
using Mesh.WireGuard.Tun;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.WireGuard.Host;

/// <summary>
/// Runs a <see cref="Device"/> over real I/O: a thread reads the TUN device and sends, a thread per receiver of
/// the <see cref="IBind"/> receives (a plain interface's one UDP socket; a mesh's socket, and its other sockets
/// and relay links), and a timer thread ticks the protocol's timers. The data path moves batches: what one
/// TUN read gave (a TSO super-packet, or what was queued) leaves sealed as one sendmmsg with GSO, and what one
/// recvmmsg gave is written to the TUN device coalesced (GRO). With crypto workers the batch travels whole
/// through the <see cref="CryptoPipeline"/>, and the thread that finishes it (a worker, or a reading thread when
/// every worker was busy) sends or writes it the same way. A thread batches while it holds a batch of its own (the
/// reading threads always, a worker while it drains); a receiving thread flushes what its drains sent after each receive.
/// </summary>
public sealed class InterfaceHost : IPacketSink, Ipc.IUapiHost, IDisposable
{
    private const int MaxReadsPerBatch = 64;
    private static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan ReceiveRetry = TimeSpan.FromMilliseconds(10);

    private readonly TunDevice _tun;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly IBind _bind;
    private readonly Thread?[] _receiveThreads;
    private Thread? _tunThread;
    private Thread? _timerThread;

    // The calling thread's batches: sends and writes from a thread without one go out at once.
    [ThreadStatic] private static SendBatch? t_sends;
    [ThreadStatic] private static Coalescing? t_writes;

    public InterfaceHost(TunDevice tun, int listenPort, ILogger? logger = null, DeviceOptions? options = null, int cryptoWorkers = 0)
        : this(tun, new UdpBind(listenPort), logger, options, cryptoWorkers)
    {
    }

    /// <param name="bind">Where datagrams come from and go (the host disposes of it).</param>
    /// <param name="cryptoWorkers">Threads that encrypt and decrypt (0: the reading threads do it themselves).</param>
    /// <param name="failures">Where the I/O threads' failures are counted (shared with the bind's), else a count of the host's own.</param>
    public InterfaceHost(TunDevice tun, IBind bind, ILogger? logger = null, DeviceOptions? options = null, int cryptoWorkers = 0, IoFailures? failures = null)
    {
        _tun = tun;
        _bind = bind;
        _logger = logger ?? NullLogger.Instance;
        Failures = failures ?? new IoFailures(_logger);
        _receiveThreads = new Thread?[bind.Receivers];
        Device = new Device(this, options: options) { ListenPort = bind.Port };
        _pipeline = cryptoWorkers > 0 ? new CryptoPipeline(Device, this, cryptoWorkers, Failures) : null;
        _handshakes = new HandshakeWorkers(Device, HandshakeWorkers.DefaultWorkers(), Failures);
    }

    /// <summary>What failed on the I/O threads (each caught per datagram, packet or tick; the threads go on).</summary>
    public IoFailures Failures { get; }

    private readonly CryptoPipeline? _pipeline;
    private readonly HandshakeWorkers _handshakes;

    public Device Device { get; }
    public string Name => _tun.Name;
    public int ListenPort => _bind.Port;

    /// <summary>Completes when the host stops, by <see cref="Dispose"/> or because the TUN interface went away.</summary>
    public Task Stopped => _stoppedSource.Task;
    private readonly TaskCompletionSource _stoppedSource = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The batching features the kernel granted, for the log and `mesh-agent status`.</summary>
    public DataPathFeatures Features => new(_tun.Offloads, _bind.Segmentation, _bind.ReceiveCoalescing);

    public void Start()
    {
        _logger.LogInformation("Interface {Name} data path: {Features}.", Name, Features);
        _tunThread = StartThread(TunLoop, "tun");
        for (var receiver = 0; receiver < _receiveThreads.Length; receiver++)
        {
            var index = receiver;
            _receiveThreads[receiver] = StartThread(() => ReceiveLoop(index), receiver == 0 ? "udp" : $"receive-{receiver}");
        }
        _timerThread = StartThread(TimerLoop, "timers");
    }

    /// <summary>Moves to another UDP port (0 for any); false when it is taken.</summary>
    public bool Rebind(int port)
    {
        if (!_bind.Rebind(port))
        {
            _logger.LogWarning("Cannot listen on UDP port {Port}: it is taken", port);
            return false;
        }
        Device.ListenPort = _bind.Port;
        return true;
    }

    public bool SetListenPort(int port) => Rebind(port);

    public void SetFirewallMark(int mark)
    {
        _bind.SetFirewallMark(mark);
        Device.FirewallMark = mark;
    }

    public void SendDatagram(ReadOnlySpan<byte> datagram, NetEndpoint destination) => _bind.Send(datagram, destination, t_sends);

    public void WriteTunnel(ReadOnlySpan<byte> packet)
    {
        if (t_writes is { } writes)
        {
            if (writes.Add(packet)) return;
            writes.Flush(_tun);
            if (writes.Add(packet)) return;
        }
        _tun.Write(packet);
    }

    /// <summary>A crypto worker ends a run of finished packets: they leave as one sendmmsg and one coalesced write.</summary>
    public void EndBatch()
    {
        if (t_sends is { Count: > 0 } sends) SendBatch(sends);
        if (t_writes is { Count: > 0 } writes) FlushWrites(writes);
    }

    /// <summary>A crypto worker starts a run of finished packets: its thread gets batches of its own (once).</summary>
    public void BeginBatch()
    {
        t_sends ??= new SendBatch();
        if (_tun.TakesFrames) t_writes ??= new Coalescing();
    }

    public void Dispose()
    {
        if (_stopping.IsCancellationRequested) return;
        _stopping.Cancel();
        _bind.Dispose();
        _tun.Dispose();
        foreach (var thread in new[] { _tunThread, _timerThread }.Concat(_receiveThreads))
        {
            if (thread is not null && thread != Thread.CurrentThread) thread.Join(TimeSpan.FromSeconds(2));
        }
        _pipeline?.Dispose();
        _handshakes.Dispose();
        Device.Dispose();
        _stoppedSource.TrySetResult();
    }

    private void TunLoop()
    {
        var packets = new PacketBatch();
        var sends = t_sends = new SendBatch();
        while (!_stopping.IsCancellationRequested)
        {
            var count = _tun.Read(packets, 500);
            if (count > 0) count = SendRead(packets, count);
            if (sends.Count > 0) SendBatch(sends);
            if (count < 0)
            {
                if (!_stopping.IsCancellationRequested)
                {
                    _logger.LogInformation("Interface {Name} is gone; stopping.", Name);
                    ThreadPool.QueueUserWorkItem(_ => Dispose());
                }
                return;
            }
        }
    }

    /// <summary>What one read gave, and what is queued already (the first empty read ends it): one batch. Returns the last read's count.</summary>
    private int SendRead(PacketBatch packets, int count)
    {
        using var batch = _pipeline?.OpenBatch();
        for (var reads = 1; count > 0; reads++)
        {
            for (var i = 0; i < count; i++)
            {
                try
                {
                    Send(packets[i]);
                }
                catch (Exception ex)
                {
                    Failures.Record(IoThread.Tun, ex);
                }
            }
            count = reads < MaxReadsPerBatch ? _tun.Read(packets, 0) : 0;
        }
        return count;
    }

    private void SendBatch(SendBatch sends)
    {
        try
        {
            _bind.Flush(sends);
        }
        catch (Exception ex)
        {
            sends.Clear();
            Failures.Record(IoThread.Tun, ex);
        }
    }

    private void Send(ReadOnlySpan<byte> packet)
    {
        if (_pipeline is null)
        {
            Device.SendPacket(packet);
            return;
        }
        var element = _pipeline.Rent();
        packet.CopyTo(element.PacketSpace);
        _pipeline.Send(element, packet.Length);
    }

    private void ReceiveLoop(int receiver)
    {
        var batch = new ReceiveBatch();
        var writes = t_writes = _tun.TakesFrames ? new Coalescing() : null;
        while (!_stopping.IsCancellationRequested)
        {
            int count;
            try
            {
                count = _bind.Receive(receiver, batch, 500);
            }
            catch (Exception ex)
            {
                // Counted, and a pause before the next try: a receive that fails at once must not spin a core.
                Failures.Record(IoThread.Udp, ex);
                _stopping.Token.WaitHandle.WaitOne(ReceiveRetry);
                continue;
            }
            if (count < 0) return;
            ReceiveRead(batch, count);
            if (writes is { Count: > 0 }) FlushWrites(writes);
            if (t_sends is { Count: > 0 } sends) SendBatch(sends);
        }
    }

    /// <summary>What one receive gave (one recvmmsg, or what a mesh's links had queued): one batch.</summary>
    private void ReceiveRead(ReceiveBatch batch, int count)
    {
        using var scope = _pipeline?.OpenBatch();
        for (var i = 0; i < count; i++)
        {
            try
            {
                Receive(batch.Datagram(i), batch.Source(i));
            }
            catch (Exception ex)
            {
                Failures.Record(IoThread.Udp, ex);
            }
        }
    }

    private void FlushWrites(Coalescing writes)
    {
        try
        {
            writes.Flush(_tun);
        }
        catch (Exception ex)
        {
            Failures.Record(IoThread.Udp, ex);
        }
    }

    /// <summary>
    /// The one receive path for WireGuard datagrams, whichever way they came (the bind tells): handshakes to the
    /// workers, transport data decrypted here or by the pipeline, and written to the TUN device coalesced.
    /// </summary>
    private void Receive(ReadOnlySpan<byte> datagram, NetEndpoint source)
    {
        if (_handshakes.TryTake(datagram, source)) return;
        if (_pipeline is null)
        {
            Device.ReceiveDatagram(datagram, source);
            return;
        }
        var element = _pipeline.Rent();
        datagram.CopyTo(element.DatagramSpace);
        _pipeline.Receive(element, datagram.Length, source);
    }

    private void TimerLoop()
    {
        while (!_stopping.Token.WaitHandle.WaitOne(TickInterval))
        {
            try
            {
                Device.Tick();
            }
            catch (Exception ex)
            {
                Failures.Record(IoThread.Timers, ex);
            }
        }
    }

    private Thread StartThread(Action loop, string role)
    {
        var thread = new Thread(() =>
        {
            try
            {
                loop();
            }
            catch (Exception ex)
            {
                _logger.LogError(ex, "The {Role} loop of {Name} failed.", role, Name);
                ThreadPool.QueueUserWorkItem(_ => Dispose());
            }
        })
        {
            IsBackground = true,
            Name = $"{Name}-{role}",
        };
        thread.Start();
        return thread;
    }
}

/// <summary>The batching an interface runs with: TUN offloads and UDP segmentation/coalescing.</summary>
public readonly record struct DataPathFeatures(TunOffloads Tun, bool UdpSegmentation, bool UdpCoalescing)
{
    /// <summary>"tso+uso", "tso", "checksum" (the virtio header without segmentation) or "off".</summary>
    public string TunOffloadNames => Tun switch
    {
        TunOffloads.None => "off",
        TunOffloads.VirtioHeader => "checksum",
        _ => (Tun & TunOffloads.Uso) != 0 ? "tso+uso" : "tso",
    };

    public override string ToString() =>
        $"TUN offloads {TunOffloadNames}, UDP GSO {(UdpSegmentation ? "on" : "off")}, UDP GRO {(UdpCoalescing ? "on" : "off")}, recvmmsg/sendmmsg on";
}
