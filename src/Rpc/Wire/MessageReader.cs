using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Grpc.Core;

namespace Mesh.Rpc.Wire;

/// <summary>
/// Reads length-prefixed messages (1 byte compressed flag, 4 bytes big-endian length, payload)
/// from one direction of a call. Framing errors become RpcExceptions with the status the protocol asks for.
/// </summary>
internal sealed class MessageReader
{
    public const int HeaderSize = 5;

    private readonly PipeReader _reader;
    private readonly int _maxMessageSize;
    private readonly string? _encoding;
    private readonly PayloadContext _context = new();

    /// <param name="encoding">The grpc-encoding the sender declared, null when none.</param>
    public MessageReader(PipeReader reader, int maxMessageSize, string? encoding)
    {
        _reader = reader;
        _maxMessageSize = maxMessageSize;
        _encoding = encoding;
    }

    /// <summary>The next message, or false at the clean end of the stream.</summary>
    public async ValueTask<(bool Read, T Message)> ReadAsync<T>(Func<DeserializationContext, T> deserializer, string direction, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await _reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (result.IsCanceled) throw new OperationCanceledException(cancellationToken);

            if (buffer.Length >= HeaderSize)
            {
                var (compressed, length) = ParseHeader(buffer);
                if (length > _maxMessageSize)
                {
                    _reader.AdvanceTo(buffer.Start);
                    throw new RpcException(new Status(StatusCode.ResourceExhausted,
                        $"Received message exceeds the maximum configured message size ({length} > {_maxMessageSize})."));
                }
                if (buffer.Length >= HeaderSize + length)
                {
                    var payload = buffer.Slice(HeaderSize, length);
                    try
                    {
                        return (true, Deserialize(payload, compressed, deserializer, direction));
                    }
                    finally
                    {
                        _reader.AdvanceTo(payload.End);
                    }
                }
            }

            if (result.IsCompleted)
            {
                _reader.AdvanceTo(buffer.End);
                if (buffer.Length == 0) return (false, default!);
                throw new RpcException(new Status(StatusCode.Internal, "Incomplete message."));
            }
            _reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static (bool Compressed, long Length) ParseHeader(in ReadOnlySequence<byte> buffer)
    {
        Span<byte> header = stackalloc byte[HeaderSize];
        buffer.Slice(0, HeaderSize).CopyTo(header);
        if (header[0] > 1) throw new RpcException(new Status(StatusCode.Internal, $"Invalid compressed flag {header[0]} in message header."));
        return (header[0] == 1, BinaryPrimitives.ReadUInt32BigEndian(header[1..]));
    }

    private T Deserialize<T>(ReadOnlySequence<byte> payload, bool compressed, Func<DeserializationContext, T> deserializer, string direction)
    {
        if (compressed)
        {
            if (_encoding is null || _encoding.Equals(GrpcProtocol.IdentityEncoding, StringComparison.OrdinalIgnoreCase))
            {
                throw new RpcException(new Status(StatusCode.Internal, "Compressed message received without a grpc-encoding."));
            }
            if (!_encoding.Equals(GrpcProtocol.GzipEncoding, StringComparison.OrdinalIgnoreCase))
            {
                throw new RpcException(new Status(StatusCode.Unimplemented, $"Unsupported grpc-encoding \"{_encoding}\"."));
            }
            payload = Compression.Gunzip(payload, _maxMessageSize);
        }

        _context.Payload = payload;
        try
        {
            return deserializer(_context);
        }
        catch (Exception ex) when (ex is not RpcException)
        {
            throw new RpcException(new Status(StatusCode.Internal, $"Failed to deserialize {direction} message.", ex));
        }
        finally
        {
            _context.Payload = default;
        }
    }

    private sealed class PayloadContext : DeserializationContext
    {
        public ReadOnlySequence<byte> Payload { get; set; }

        public override int PayloadLength => (int)Payload.Length;

        public override byte[] PayloadAsNewBuffer() => Payload.ToArray();

        public override ReadOnlySequence<byte> PayloadAsReadOnlySequence() => Payload;
    }
}
