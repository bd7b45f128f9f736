using System.Net;
using Mesh.WireGuard.Conn;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Noise;
using Mesh.WireGuard.Tun;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Mesh.WireGuard.Host;

/// <summary>What a mesh plugs into an interface: the datagrams that are not WireGuard, and where peers' datagrams go.</summary>
public interface IDatagramRouter
{
    void OnDatagram(ReadOnlySpan<byte> datagram, NetEndpoint from);

    /// <summary>Sends a datagram the device addressed to <paramref name="destination"/>; false to send it there as is.</summary>
    bool TrySend(ReadOnlySpan<byte> datagram, NetEndpoint destination);
}

/// <summary>
/// Runs a <see cref="Device"/> over real I/O: a thread reads the TUN device and sends, a thread receives
/// from the UDP socket, and a timer thread ticks the protocol's timers.
/// </summary>
public sealed class InterfaceHost : IPacketSink, Ipc.IUapiHost, IDisposable
{
    private const int MaxPacket = 65535;
    private static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(100);

    private readonly TunDevice _tun;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly object _bindLock = new();
    private UdpBinding _udp;
    private Thread? _udpThread;
    private Thread? _tunThread;
    private Thread? _timerThread;

    /// <param name="cryptoWorkers">Threads that encrypt and decrypt (0: the reading threads do it themselves).</param>
    public InterfaceHost(TunDevice tun, int listenPort, ILogger? logger = null, DeviceOptions? options = null, int cryptoWorkers = 0)
    {
        _tun = tun;
        _logger = logger ?? NullLogger.Instance;
        _udp = UdpBinding.Bind(listenPort);
        Device = new Device(this, options: options) { ListenPort = _udp.Port };
        _pipeline = cryptoWorkers > 0 ? new CryptoPipeline(Device, this, cryptoWorkers) : null;
    }

    private readonly CryptoPipeline? _pipeline;

    public Device Device { get; }
    public string Name => _tun.Name;
    public int ListenPort => _udp.Port;

    /// <summary>
    /// Set by a mesh: it takes every datagram that is not WireGuard (STUN, probes, relay frames) and routes
    /// the device's datagrams for its peers. Null for a plain WireGuard interface.
    /// </summary>
    public IDatagramRouter? Router { get; set; }

    /// <summary>Completes when the host stops, by <see cref="Dispose"/> or because the TUN interface went away.</summary>
    public Task Stopped => _stoppedSource.Task;
    private readonly TaskCompletionSource _stoppedSource = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Start()
    {
        _tunThread = StartThread(TunLoop, "tun");
        _udpThread = StartThread(() => UdpLoop(_udp), "udp");
        _timerThread = StartThread(TimerLoop, "timers");
    }

    /// <summary>Moves to another UDP port (0 for any); false when it is taken.</summary>
    public bool Rebind(int port)
    {
        lock (_bindLock)
        {
            if (port != 0 && port == _udp.Port) return true;
            UdpBinding fresh;
            try
            {
                fresh = UdpBinding.Bind(port);
            }
            catch (System.Net.Sockets.SocketException ex)
            {
                _logger.LogWarning("Cannot listen on UDP port {Port}: {Message}", port, ex.Message);
                return false;
            }
            if (Device.FirewallMark != 0) fresh.SetFirewallMark(Device.FirewallMark);
            var old = _udp;
            _udp = fresh;
            Device.ListenPort = fresh.Port;
            old.Dispose();
            _udpThread = StartThread(() => UdpLoop(fresh), "udp");
            return true;
        }
    }

    public bool SetListenPort(int port) => Rebind(port);

    public void SetFirewallMark(int mark)
    {
        lock (_bindLock)
        {
            _udp.SetFirewallMark(mark);
            Device.FirewallMark = mark;
        }
    }

    public void SendDatagram(ReadOnlySpan<byte> datagram, NetEndpoint destination)
    {
        if (Router?.TrySend(datagram, destination) != true) _udp.Send(datagram, destination);
    }

    /// <summary>Sends from the interface's socket as is, for the mesh's own traffic (STUN, probes, relay frames).</summary>
    public void SendRaw(ReadOnlySpan<byte> datagram, NetEndpoint destination, int ttl = 0) => _udp.Send(datagram, destination, ttl);

    public void WriteTunnel(ReadOnlySpan<byte> packet) => _tun.Write(packet);

    public void Dispose()
    {
        if (_stopping.IsCancellationRequested) return;
        _stopping.Cancel();
        lock (_bindLock) _udp.Dispose();
        _tun.Dispose();
        foreach (var thread in new[] { _tunThread, _udpThread, _timerThread })
        {
            if (thread is not null && thread != Thread.CurrentThread) thread.Join(TimeSpan.FromSeconds(2));
        }
        _pipeline?.Dispose();
        Device.Dispose();
        _stoppedSource.TrySetResult();
    }

    private void TunLoop()
    {
        var buffer = new byte[MaxPacket];
        while (!_stopping.IsCancellationRequested)
        {
            var element = _pipeline?.Rent();
            var length = _tun.Read(element is null ? buffer : element.PacketSpace, 500);
            if (element is not null && length > 0)
            {
                _pipeline!.Send(element, length);
                continue;
            }
            if (element is not null) _pipeline!.Return(element);
            if (length < 0)
            {
                if (!_stopping.IsCancellationRequested)
                {
                    _logger.LogInformation("Interface {Name} is gone; stopping.", Name);
                    ThreadPool.QueueUserWorkItem(_ => Dispose());
                }
                return;
            }
            if (length > 0) Device.SendPacket(buffer.AsSpan(0, length));
        }
    }

    private void UdpLoop(UdpBinding udp)
    {
        var buffer = new byte[MaxPacket];
        var from = udp.CreateReceiveAddress();
        while (!_stopping.IsCancellationRequested)
        {
            var element = _pipeline?.Rent();
            var length = udp.Receive(element is null ? buffer : element.DatagramSpace, from, out var source);
            if (length > 0 && Router is { } router)
            {
                var datagram = element is null ? buffer.AsSpan(0, length) : element.DatagramSpace[..length];
                if (MessageLayout.TypeOf(datagram) == 0)
                {
                    router.OnDatagram(datagram, source);
                    if (element is not null) _pipeline!.Return(element);
                    continue;
                }
            }
            if (element is not null && length > 0)
            {
                _pipeline!.Receive(element, length, source);
                continue;
            }
            if (element is not null) _pipeline!.Return(element);
            if (length < 0) return;
            if (length > 0) Device.ReceiveDatagram(buffer.AsSpan(0, length), source);
        }
    }

    private void TimerLoop()
    {
        while (!_stopping.Token.WaitHandle.WaitOne(TickInterval)) Device.Tick();
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
