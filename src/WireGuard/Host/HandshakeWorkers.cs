using System.Collections.Concurrent;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Noise;

namespace Mesh.WireGuard.Host;

/// <summary>
/// Handshake initiations and responses handled on every core (wireguard-go's handshake queue): the receiving
/// thread hands each over and goes on with transport data, and the Diffie-Hellman work of different peers runs
/// in parallel. The queue is bounded; a message that finds it full is dropped and counted, as under a flood the
/// cookie replies it would have earned are what the sender needs, and those come once the queue drains.
/// </summary>
public sealed class HandshakeWorkers : IDisposable
{
    /// <summary>One per core: handshakes are CPU-bound.</summary>
    public static int DefaultWorkers() => Environment.ProcessorCount;

    private readonly Device _device;
    private readonly BlockingCollection<Message> _queue;
    private readonly ConcurrentQueue<Message> _free = new();
    private readonly Thread[] _workers;
    private readonly IoFailures _failures;

    public HandshakeWorkers(Device device, int workers, IoFailures failures, int capacity = 1024)
    {
        _device = device;
        _failures = failures;
        _queue = new BlockingCollection<Message>(new ConcurrentQueue<Message>(), capacity);
        _workers = new Thread[workers];
        for (var i = 0; i < workers; i++)
        {
            _workers[i] = new Thread(Work) { IsBackground = true, Name = $"wg-handshake-{i}" };
            _workers[i].Start();
        }
    }

    /// <summary>Takes a copy of an initiation or response to handle on a worker; false for other messages.</summary>
    public bool TryTake(ReadOnlySpan<byte> datagram, NetEndpoint from)
    {
        var type = MessageLayout.TypeOf(datagram);
        if (type is not (MessageType.Initiation or MessageType.Response) || datagram.Length > MessageLayout.InitiationSize) return false;
        var message = _free.TryDequeue(out var reused) ? reused : new Message();
        datagram.CopyTo(message.Bytes);
        message.Length = datagram.Length;
        message.From = from;
        if (!_queue.TryAdd(message))
        {
            _free.Enqueue(message);
            _device.Stats.Drop(DropReason.HandshakeQueueFull);
        }
        return true;
    }

    public void Dispose()
    {
        _queue.CompleteAdding();
        foreach (var worker in _workers) worker.Join(TimeSpan.FromSeconds(2));
    }

    private void Work()
    {
        foreach (var message in _queue.GetConsumingEnumerable())
        {
            try
            {
                _device.ReceiveDatagram(message.Bytes.AsSpan(0, message.Length), message.From);
            }
            catch (Exception ex)
            {
                _failures.Record(IoThread.Handshake, ex);
            }
            _free.Enqueue(message);
        }
    }

    private sealed class Message
    {
        public readonly byte[] Bytes = new byte[MessageLayout.InitiationSize];
        public int Length;
        public NetEndpoint From;
    }
}
