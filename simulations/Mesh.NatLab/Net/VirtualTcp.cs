using System.Threading.Tasks.Sources;
using Mesh.NatLab.Sim;

namespace Mesh.NatLab.Net;

/// <summary>
/// A TCP connection on virtual time: two streams whose writes reach the other end after a latency, in order.
/// Reads complete on the scheduler's thread from the event that delivers the bytes, so the production code
/// reading them (WebSockets, relay links) runs there too, as deterministic as the rest of the lab.
/// </summary>
public sealed class VirtualTcp
{
    private VirtualTcp(Scheduler scheduler, TimeSpan latency)
    {
        Client = new End(scheduler, latency);
        Server = new End(scheduler, latency);
        Client.Peer = Server;
        Server.Peer = Client;
    }

    public End Client { get; }
    public End Server { get; }

    public static VirtualTcp Open(Scheduler scheduler, TimeSpan latency) => new(scheduler, latency);

    /// <summary>The connection dies (a reset, the server's process gone): both ends fail their reads now.</summary>
    public void Reset()
    {
        Client.Fail();
        Server.Fail();
    }

    public sealed class End : Stream, IValueTaskSource<int>
    {
        private readonly Scheduler _scheduler;
        private readonly TimeSpan _latency;
        private readonly Queue<byte[]> _arrived = new();
        private ManualResetValueTaskSourceCore<int> _read;
        private Memory<byte> _readBuffer;
        private CancellationTokenRegistration _readCancellation;
        private bool _reading;
        private int _offset;
        private bool _finished;
        private bool _failed;
        private bool _closed;

        internal End(Scheduler scheduler, TimeSpan latency)
        {
            _scheduler = scheduler;
            _latency = latency;
            _read.RunContinuationsAsynchronously = false;
        }

        internal End Peer { get; set; } = null!;

        public override bool CanRead => true;
        public override bool CanWrite => true;
        public override bool CanSeek => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_reading) throw new InvalidOperationException("One read at a time.");
            if (_failed) return ValueTask.FromException<int>(new IOException("Connection reset by peer."));
            if (_arrived.Count > 0) return new ValueTask<int>(Take(buffer.Span));
            if (_finished) return new ValueTask<int>(0);
            _read.Reset();
            _reading = true;
            _readBuffer = buffer;
            if (cancellationToken.CanBeCanceled) _readCancellation = cancellationToken.Register(() => Complete(new OperationCanceledException(cancellationToken)));
            return new ValueTask<int>(this, _read.Version);
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_failed || _closed) return ValueTask.FromException(new IOException("The connection is closed."));
            var copy = buffer.ToArray();
            _scheduler.After(_latency, () => Peer.Deliver(copy));
            return ValueTask.CompletedTask;
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("Virtual TCP is asynchronous.");

        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing && !_closed)
            {
                _closed = true;
                // A FIN: the other end reads what was sent, then the end of the stream.
                _scheduler.After(_latency, Peer.Finish);
            }
            base.Dispose(disposing);
        }

        internal void Fail()
        {
            _failed = true;
            _arrived.Clear();
            if (_reading) Complete(new IOException("Connection reset by peer."));
        }

        private void Deliver(byte[] bytes)
        {
            if (_failed) return;
            _arrived.Enqueue(bytes);
            if (_reading) Complete(null);
        }

        private void Finish()
        {
            _finished = true;
            if (_reading && _arrived.Count == 0) Complete(null);
        }

        private void Complete(Exception? error)
        {
            if (!_reading) return;
            _reading = false;
            _readCancellation.Dispose();
            if (error is not null) _read.SetException(error);
            else _read.SetResult(_arrived.Count > 0 ? Take(_readBuffer.Span) : 0);
        }

        private int Take(Span<byte> destination)
        {
            var head = _arrived.Peek();
            var count = Math.Min(destination.Length, head.Length - _offset);
            head.AsSpan(_offset, count).CopyTo(destination);
            _offset += count;
            if (_offset == head.Length)
            {
                _arrived.Dequeue();
                _offset = 0;
            }
            return count;
        }

        int IValueTaskSource<int>.GetResult(short token) => _read.GetResult(token);

        ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _read.GetStatus(token);

        void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _read.OnCompleted(continuation, state, token, flags);
    }
}
