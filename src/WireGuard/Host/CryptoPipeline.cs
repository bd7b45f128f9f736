using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Noise;

namespace Mesh.WireGuard.Host;

/// <summary>
/// Encrypts and decrypts on several cores while each peer's packets leave and arrive in order (the shape of
/// wireguard-go's queues). The reading thread prepares a packet (in order) and puts it both on the shared
/// work queue and at the tail of its peer's ordered queue; a worker seals or opens it, then whoever finds
/// the head of that ordered queue finished sends or delivers from there. Buffers are pooled, and made only as
/// load needs them (up to the capacity), so an idle interface holds a few instead of the capacity's 64 MiB.
/// </summary>
public sealed class CryptoPipeline : IDisposable
{
    /// <summary>
    /// Crypto worker threads: $MESH_CRYPTO_WORKERS when set, else one per core on machines with more than two
    /// (with two, the reading threads doing their own crypto measured faster: handing off costs a wakeup per packet).
    /// </summary>
    public static int DefaultWorkers()
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("MESH_CRYPTO_WORKERS"), out var workers) && workers >= 0) return workers;
        return Environment.ProcessorCount > 2 ? Environment.ProcessorCount : 0;
    }

    private const int BufferSize = 65535 + 64;

    private readonly Device _device;
    private readonly IPacketSink _sink;
    private readonly ConcurrentQueue<Element> _work = new();
    private readonly SemaphoreSlim _workReady = new(0);
    private readonly ConcurrentQueue<Element> _free = new();
    private readonly SemaphoreSlim _freeSlots;
    private readonly ConditionalWeakTable<Peer, OrderedQueue> _outbound = new();
    private readonly ConditionalWeakTable<Peer, OrderedQueue> _inbound = new();
    private readonly Thread[] _workers;
    private volatile bool _stopping;

    private readonly IoFailures _failures;

    public CryptoPipeline(Device device, IPacketSink sink, int workers, IoFailures failures, int capacity = 1024)
    {
        _device = device;
        _failures = failures;
        _sink = sink;
        _freeSlots = new SemaphoreSlim(capacity);
        _workers = new Thread[workers];
        for (var i = 0; i < workers; i++)
        {
            _workers[i] = new Thread(Work) { IsBackground = true, Name = $"wg-crypto-{i}" };
            _workers[i].Start();
        }
    }

    /// <summary>A buffer to read the next packet or datagram into; blocks while all are in flight.</summary>
    public Element Rent()
    {
        _freeSlots.Wait();
        return _free.TryDequeue(out var element) ? element : new Element();
    }

    /// <summary>The element holds a tunnel packet at offset 16 (<see cref="Element.PacketSpace"/>); it is sent, staged or dropped.</summary>
    public void Send(Element element, int packetLength)
    {
        if (!_device.TryPrepareSend(element.Buffer.AsSpan(MessageLayout.TransportHeaderSize, packetLength), out var job))
        {
            Return(element);
            return;
        }
        element.Outbound = job;
        Dispatch(element, _outbound.GetValue(job.Peer, _ => new OrderedQueue()));
    }

    /// <summary>The element holds a datagram from the network at offset 0; it is decrypted and delivered, or handled, or dropped.</summary>
    public void Receive(Element element, int datagramLength, NetEndpoint from)
    {
        if (!_device.TryPrepareReceive(element.Buffer.AsSpan(0, datagramLength), from, out var job))
        {
            Return(element);
            return;
        }
        element.Inbound = job;
        Dispatch(element, _inbound.GetValue(job.Peer, _ => new OrderedQueue()));
    }

    public void Dispose()
    {
        _stopping = true;
        if (_workers.Length > 0) _workReady.Release(_workers.Length);
        foreach (var worker in _workers) worker.Join(TimeSpan.FromSeconds(2));
    }

    private void Dispatch(Element element, OrderedQueue queue)
    {
        element.Queue = queue;
        element.State = ElementState.Pending;
        lock (queue) queue.Items.Enqueue(element);
        _work.Enqueue(element);
        _workReady.Release();
    }

    private void Work()
    {
        while (true)
        {
            _workReady.Wait();
            if (_stopping) return;
            if (!_work.TryDequeue(out var element)) continue;
            bool ok;
            try
            {
                ok = element.IsOutbound
                    ? _device.Seal(element.Outbound, element.Buffer)
                    : _device.Open(element.Inbound, element.Buffer, element.Buffer.AsSpan(MessageLayout.TransportHeaderSize));
            }
            catch (Exception ex)
            {
                // Failed, but completed all the same: the peer's queue must not wait on it forever.
                _failures.Record(IoThread.Crypto, ex);
                ok = false;
            }
            Complete(element, ok);
        }
    }

    /// <summary>Marks the element done and, in order, sends or delivers every finished element at the head of its queue.</summary>
    private void Complete(Element element, bool ok)
    {
        var queue = element.Queue!;
        lock (queue)
        {
            element.State = ok ? ElementState.Done : ElementState.Failed;
            while (queue.Items.TryPeek(out var head) && head.State != ElementState.Pending)
            {
                queue.Items.Dequeue();
                if (head.State == ElementState.Done)
                {
                    try
                    {
                        if (head.IsOutbound) _sink.SendDatagram(head.Buffer.AsSpan(0, head.Outbound.DatagramLength), head.Outbound.Endpoint);
                        else _device.CompleteReceive(head.Inbound, head.Buffer.AsSpan(MessageLayout.TransportHeaderSize));
                    }
                    catch (Exception ex)
                    {
                        _failures.Record(IoThread.Crypto, ex);
                    }
                }
                Return(head);
            }
        }
    }

    /// <summary>Gives back an element that was rented but not used.</summary>
    public void Return(Element element)
    {
        element.Queue = null;
        element.Outbound = default;
        element.Inbound = default;
        _free.Enqueue(element);
        _freeSlots.Release();
    }

    internal enum ElementState
    {
        Pending,
        Done,
        Failed,
    }

    internal sealed class OrderedQueue
    {
        public readonly Queue<Element> Items = new();
    }

    public sealed class Element
    {
        internal readonly byte[] Buffer = new byte[BufferSize];
        internal OutboundJob Outbound;
        internal InboundJob Inbound;
        internal OrderedQueue? Queue;
        internal volatile ElementState State;

        internal bool IsOutbound => Outbound.Keypair is not null;

        /// <summary>Where a tunnel packet is read to: after room for the transport header.</summary>
        public Span<byte> PacketSpace => Buffer.AsSpan(MessageLayout.TransportHeaderSize, BufferSize - MessageLayout.TransportHeaderSize - Crypto.Aead.TagSize - 16);

        /// <summary>Where a datagram is received to.</summary>
        public Span<byte> DatagramSpace => Buffer;
    }
}
