using System.Collections.Concurrent;
using Mesh.WireGuard.Core;
using Mesh.WireGuard.Noise;

namespace Mesh.WireGuard.Host;

/// <summary>
/// Encrypts and decrypts on several cores while packets leave and arrive in order, in the batches they were
/// read in (the shape of wireguard-go's queues and sequential sender). The reading thread prepares each packet
/// in order (counters, keys) into the batch it has open (<see cref="OpenBatch"/>: one TUN read, one recvmmsg);
/// closing it puts the whole batch on the work queue and at the tail of its direction's ordered queue. An idle
/// worker seals or opens the batch (with every worker busy, the reading thread does it itself), then whoever finds the head of that queue finished sends or delivers from there,
/// batch after batch, and ends each run with <see cref="IPacketSink.EndBatch"/>: one sendmmsg with GSO, one
/// coalesced TUN write. Packets handed over outside an open batch go as batches of one. Buffers are pooled, and
/// made only as load needs them (up to the capacity), so an idle interface holds a few instead of the capacity's 64 MiB.
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

    /// <summary>A batch holds at most this many packets: a TSO read of 64 KiB is about 45.</summary>
    private const int MaxBatch = 128;

    [ThreadStatic] private static Batch? t_open;

    private readonly Device _device;
    private readonly IPacketSink _sink;
    private readonly ConcurrentQueue<Batch> _work = new();
    private readonly WorkSignal _workReady = new();
    private readonly ConcurrentQueue<Element> _free = new();
    private readonly ConcurrentQueue<Batch> _freeBatches = new();
    private readonly SemaphoreSlim _freeSlots;
    private readonly OrderedQueue _outbound = new();
    private readonly OrderedQueue _inbound = new();
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

    /// <summary>
    /// Opens a batch on the calling thread: packets it hands over until the scope ends travel together and
    /// leave together. The reading threads open one per read.
    /// </summary>
    public BatchScope OpenBatch()
    {
        t_open = NewBatch();
        return new BatchScope(this);
    }

    /// <summary>A buffer to read the next packet or datagram into; blocks while all are in flight.</summary>
    public Element Rent()
    {
        if (!_freeSlots.Wait(0))
        {
            // Every buffer is in flight: those in this thread's open batch come back only once it is on its way.
            Submit();
            _freeSlots.Wait();
        }
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
        Add(element, outbound: true);
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
        Add(element, outbound: false);
    }

    public void Dispose()
    {
        _stopping = true;
        _workReady.ReleaseAll();
        foreach (var worker in _workers) worker.Join(TimeSpan.FromSeconds(2));
    }

    /// <summary>Into the thread's open batch (one per direction's run: a change of direction closes it), or on its way alone.</summary>
    private void Add(Element element, bool outbound)
    {
        if (t_open is not { } open || open.Pipeline != this)
        {
            var single = NewBatch();
            single.Outbound = outbound;
            single.Elements.Add(element);
            Dispatch(single);
            return;
        }
        if (open.Elements.Count > 0 && (open.Outbound != outbound || open.Elements.Count == MaxBatch)) Submit();
        open = t_open!;
        open.Outbound = outbound;
        open.Elements.Add(element);
    }

    /// <summary>Sends the thread's open batch on its way (when it holds anything) and opens an empty one in its place.</summary>
    private void Submit()
    {
        if (t_open is not { } open || open.Pipeline != this || open.Elements.Count == 0) return;
        t_open = NewBatch();
        Dispatch(open);
    }

    /// <summary>Ends the thread's open batch: what it holds goes on its way.</summary>
    private void Close()
    {
        Submit();
        if (t_open is { } empty && empty.Pipeline == this)
        {
            t_open = null;
            ReturnBatch(empty);
        }
    }

    private Batch NewBatch()
    {
        var batch = _freeBatches.TryDequeue(out var reused) ? reused : new Batch(this);
        batch.Done = false;
        return batch;
    }

    /// <summary>
    /// Puts the batch in its direction's order and wakes an idle worker for it; with none idle, the calling thread seals
    /// or opens the oldest batch waiting (its own, or one queued just before) itself. Measured with the workers forced
    /// on for two cores, a wg-quick pair with both ends on one machine: 1.5-1.8 Gbit/s handing every batch over to
    /// workers that spun while idle, 3.2-3.3 with workers that sleep and are woken only when idle.
    /// </summary>
    private void Dispatch(Batch batch)
    {
        var order = batch.Outbound ? _outbound : _inbound;
        lock (order) order.Batches.Enqueue(batch);
        _work.Enqueue(batch);
        if (!_workReady.TryWake() && _work.TryDequeue(out var oldest)) Process(oldest);
    }

    private void Work()
    {
        while (true)
        {
            _workReady.Wait();
            if (_stopping) return;
            if (_work.TryDequeue(out var batch)) Process(batch);
        }
    }

    private void Process(Batch batch)
    {
        foreach (var element in batch.Elements)
        {
            try
            {
                element.Ok = element.IsOutbound
                    ? _device.Seal(element.Outbound, element.Buffer)
                    : _device.Open(element.Inbound, element.Buffer, element.Buffer.AsSpan(MessageLayout.TransportHeaderSize));
            }
            catch (Exception ex)
            {
                // Failed, but completed all the same: the queue must not wait on it forever.
                _failures.Record(IoThread.Crypto, ex);
                element.Ok = false;
            }
        }
        // Once done, another worker may drain the batch and it may be reused: its queue is taken first.
        var order = batch.Outbound ? _outbound : _inbound;
        batch.Done = true;
        Drain(order);
    }

    /// <summary>
    /// In order, sends or delivers every finished batch at the head of the queue, and ends the run as one batch
    /// for the sink. One thread drains at a time, holding the queue's lock, so a later batch cannot leave before
    /// an earlier one; a worker that finds it taken goes back to work rather than wait, and the drainer, seeing
    /// the request it left, drains again before it lets go.
    /// </summary>
    private void Drain(OrderedQueue order)
    {
        Volatile.Write(ref order.Requested, 1);
        while (Volatile.Read(ref order.Requested) == 1 && Monitor.TryEnter(order))
        {
            try
            {
                Volatile.Write(ref order.Requested, 0);
                DrainFinished(order.Batches);
            }
            finally
            {
                Monitor.Exit(order);
            }
        }
    }

    private void DrainFinished(Queue<Batch> batches)
    {
        var drained = false;
        while (batches.TryPeek(out var head) && head.Done)
        {
            batches.Dequeue();
            if (!drained) _sink.BeginBatch();
            drained = true;
            foreach (var element in head.Elements)
            {
                if (element.Ok) Deliver(element);
                Return(element);
            }
            ReturnBatch(head);
        }
        if (!drained) return;
        try
        {
            _sink.EndBatch();
        }
        catch (Exception ex)
        {
            _failures.Record(IoThread.Crypto, ex);
        }
    }

    private void Deliver(Element element)
    {
        try
        {
            if (element.IsOutbound) _sink.SendDatagram(element.Buffer.AsSpan(0, element.Outbound.DatagramLength), element.Outbound.Endpoint);
            else _device.CompleteReceive(element.Inbound, element.Buffer.AsSpan(MessageLayout.TransportHeaderSize));
        }
        catch (Exception ex)
        {
            _failures.Record(IoThread.Crypto, ex);
        }
    }

    private void ReturnBatch(Batch batch)
    {
        batch.Elements.Clear();
        _freeBatches.Enqueue(batch);
    }

    /// <summary>Gives back an element that was rented but not used.</summary>
    public void Return(Element element)
    {
        element.Outbound = default;
        element.Inbound = default;
        element.Ok = false;
        _free.Enqueue(element);
        _freeSlots.Release();
    }

    /// <summary>The calling thread's open batch, from <see cref="OpenBatch"/> to the end of the scope.</summary>
    public readonly struct BatchScope(CryptoPipeline pipeline) : IDisposable
    {
        public void Dispose() => pipeline.Close();
    }

    /// <summary>One direction's batches in the order they were read; <see cref="Requested"/> is a drain asked for while another ran.</summary>
    internal sealed class OrderedQueue
    {
        public readonly Queue<Batch> Batches = new();
        public int Requested;
    }

    /// <summary>Packets read together, in one direction; the workers seal or open them all and then mark it done.</summary>
    internal sealed class Batch(CryptoPipeline pipeline)
    {
        public readonly CryptoPipeline Pipeline = pipeline;
        public readonly List<Element> Elements = new(MaxBatch);
        public bool Outbound;
        public volatile bool Done;
    }

    public sealed class Element
    {
        internal readonly byte[] Buffer = new byte[BufferSize];
        internal OutboundJob Outbound;
        internal InboundJob Inbound;
        internal bool Ok;

        internal bool IsOutbound => Outbound.Keypair is not null;

        /// <summary>Where a tunnel packet is read to: after room for the transport header.</summary>
        public Span<byte> PacketSpace => Buffer.AsSpan(MessageLayout.TransportHeaderSize, BufferSize - MessageLayout.TransportHeaderSize - Crypto.Aead.TagSize - 16);

        /// <summary>Where a datagram is received to.</summary>
        public Span<byte> DatagramSpace => Buffer;
    }

    /// <summary>
    /// Wakes idle workers, one per batch handed over, and knows when none is idle. Waits without spinning:
    /// SemaphoreSlim spins before it sleeps, and an idle worker's spin between batches took the core the reading
    /// threads needed.
    /// </summary>
    private sealed class WorkSignal
    {
        private readonly object _lock = new();
        private int _waiting;
        private int _wakes;
        private bool _stopped;

        /// <summary>Wakes a worker that waits and is not woken yet; false when there is none (all are busy).</summary>
        public bool TryWake()
        {
            lock (_lock)
            {
                if (_waiting <= _wakes) return false;
                _wakes++;
                Monitor.Pulse(_lock);
                return true;
            }
        }

        /// <summary>Wakes every worker, now and whenever it comes back to wait: the pipeline stops.</summary>
        public void ReleaseAll()
        {
            lock (_lock)
            {
                _stopped = true;
                Monitor.PulseAll(_lock);
            }
        }

        public void Wait()
        {
            lock (_lock)
            {
                _waiting++;
                while (_wakes == 0 && !_stopped) Monitor.Wait(_lock);
                if (_wakes > 0) _wakes--;
                _waiting--;
            }
        }
    }
}
