using System.Net;
using System.Net.Sockets;
using Mesh.Traversal.Stun;
using Mesh.WireGuard.Conn;
using Mesh.WireGuard.Core;
using Microsoft.Extensions.Logging;

namespace Mesh.Coordinator.Stun;

/// <summary>
/// STUN Binding service on two UDP ports, so agents can compare the mapped ports they see from each and
/// tell endpoint-independent NAT mapping from mapping that varies by destination. Anything malformed is
/// dropped and counted; nothing is answered that was not a well-formed Binding request.
/// </summary>
public sealed class StunServer : IDisposable
{
    private readonly List<UdpBinding> _sockets = new();
    private readonly List<Thread> _threads = new();
    private readonly ILogger _logger;
    private long _answered;
    private long _dropped;
    private volatile bool _stopping;

    public StunServer(IPAddress address, int firstPort, ILogger logger)
    {
        _logger = logger;
        try
        {
            foreach (var port in new[] { firstPort, firstPort == 0 ? 0 : firstPort + 1 })
            {
                var socket = UdpBinding.Bind(port, address);
                _sockets.Add(socket);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
        foreach (var socket in _sockets)
        {
            var thread = new Thread(() => Serve(socket)) { IsBackground = true, Name = $"stun-{socket.Port}" };
            _threads.Add(thread);
            thread.Start();
        }
    }

    public IReadOnlyList<int> Ports => _sockets.Select(s => s.Port).ToList();
    public long Answered => Interlocked.Read(ref _answered);
    public long Dropped => Interlocked.Read(ref _dropped);

    public void Dispose()
    {
        _stopping = true;
        foreach (var socket in _sockets) socket.Dispose();
        foreach (var thread in _threads) thread.Join(TimeSpan.FromSeconds(2));
    }

    private void Serve(UdpBinding socket)
    {
        var buffer = new byte[2048];
        var response = new byte[StunMessage.MaxResponseSize];
        Span<ushort> unknown = stackalloc ushort[8];
        var from = socket.CreateReceiveAddress();
        while (!_stopping)
        {
            var length = socket.Receive(buffer, from, out var source);
            if (length < 0) return;
            if (length == 0) continue;
            var size = StunMessage.Answer(buffer.AsSpan(0, length), source, response, unknown);
            if (size == 0)
            {
                Interlocked.Increment(ref _dropped);
                continue;
            }
            socket.Send(response.AsSpan(0, size), source);
            Interlocked.Increment(ref _answered);
        }
    }
}
