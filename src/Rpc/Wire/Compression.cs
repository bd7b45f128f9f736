using System.Buffers;
using System.IO.Compression;
using Grpc.Core;

namespace Mesh.Rpc.Wire;

/// <summary>gzip message compression, with the size limit enforced on the inflated bytes.</summary>
internal static class Compression
{
    public static byte[] Gzip(ReadOnlySpan<byte> payload)
    {
        using var output = new MemoryStream(payload.Length / 2 + 64);
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(payload);
        }
        return output.ToArray();
    }

    public static ReadOnlySequence<byte> Gunzip(ReadOnlySequence<byte> compressed, int maxSize)
    {
        using var input = new MemoryStream(compressed.ToArray(), writable: false);
        using var gzip = new GZipStream(input, CompressionMode.Decompress);
        var output = new ArrayBufferWriter<byte>(Math.Min(maxSize, (int)Math.Min(int.MaxValue / 2, compressed.Length * 4 + 64)));
        try
        {
            while (true)
            {
                var span = output.GetSpan(16 * 1024);
                var read = gzip.Read(span);
                if (read == 0) break;
                output.Advance(read);
                if (output.WrittenCount > maxSize)
                {
                    throw new RpcException(new Status(StatusCode.ResourceExhausted, "Received message exceeds the maximum configured message size."));
                }
            }
        }
        catch (InvalidDataException ex)
        {
            throw new RpcException(new Status(StatusCode.Internal, "Invalid gzip message.", ex));
        }
        return new ReadOnlySequence<byte>(output.WrittenMemory);
    }
}
