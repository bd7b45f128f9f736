using System.Buffers;
using System.Buffers.Binary;
using Grpc.Core;

namespace Mesh.Rpc.Wire;

/// <summary>
/// Serializes messages into length-prefixed frames. When the serializer announces the payload
/// length it writes straight into the output; otherwise the payload is staged in a reusable buffer.
/// One instance per call direction; not thread-safe.
/// </summary>
internal sealed class MessageWriter : SerializationContext
{
    private readonly int? _maxMessageSize;
    private readonly bool _compress;
    private readonly ArrayBufferWriter<byte> _staging = new();
    private IBufferWriter<byte>? _output;
    private int _declaredLength;
    private bool _writingDirect;
    private bool _completed;

    /// <param name="compress">gzip every message (the call declared grpc-encoding: gzip).</param>
    public MessageWriter(int? maxMessageSize, bool compress)
    {
        _maxMessageSize = maxMessageSize;
        _compress = compress;
    }

    public void Write<T>(IBufferWriter<byte> output, T message, Marshaller<T> marshaller)
    {
        _output = output;
        _declaredLength = -1;
        _writingDirect = false;
        _completed = false;
        try
        {
            marshaller.ContextualSerializer(message, this);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw new RpcException(new Status(StatusCode.Internal, "Failed to serialize message.", ex));
        }
        finally
        {
            _output = null;
        }
        if (!_completed) throw new InvalidOperationException("The serializer did not complete the message.");
    }

    public override void Complete(byte[] payload)
    {
        WriteFrame(payload);
        _completed = true;
    }

    public override void SetPayloadLength(int payloadLength) => _declaredLength = payloadLength;

    public override IBufferWriter<byte> GetBufferWriter()
    {
        if (_declaredLength >= 0 && !_compress)
        {
            CheckSize(_declaredLength);
            WriteHeader(Output, compressed: false, _declaredLength);
            _writingDirect = true;
            return Output;
        }
        _staging.Clear();
        return _staging;
    }

    public override void Complete()
    {
        if (!_writingDirect) WriteFrame(_staging.WrittenSpan);
        _completed = true;
    }

    private IBufferWriter<byte> Output => _output ?? throw new InvalidOperationException("No message is being written.");

    private void WriteFrame(ReadOnlySpan<byte> payload)
    {
        CheckSize(payload.Length);
        if (_compress)
        {
            var compressed = Compression.Gzip(payload);
            WriteHeader(Output, compressed: true, compressed.Length);
            Output.Write(compressed);
        }
        else
        {
            WriteHeader(Output, compressed: false, payload.Length);
            Output.Write(payload);
        }
    }

    private void CheckSize(int length)
    {
        if (length > _maxMessageSize)
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted,
                $"Sending message exceeds the maximum configured message size ({length} > {_maxMessageSize})."));
        }
    }

    private static void WriteHeader(IBufferWriter<byte> output, bool compressed, int length)
    {
        var header = output.GetSpan(MessageReader.HeaderSize);
        header[0] = compressed ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt32BigEndian(header[1..], (uint)length);
        output.Advance(MessageReader.HeaderSize);
    }
}
