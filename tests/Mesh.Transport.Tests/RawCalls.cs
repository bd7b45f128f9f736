using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;

namespace Mesh.Transport.Tests;

/// <summary>Hand-built HTTP/2 gRPC requests, for input no well-behaved client would send.</summary>
internal static class RawCalls
{
    public static HttpClient CreateClient() => new(new SocketsHttpHandler())
    {
        DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
    };

    public static byte[] Frame(byte[] payload, byte flag = 0, int? declaredLength = null)
    {
        var frame = new byte[5 + payload.Length];
        frame[0] = flag;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)(declaredLength ?? payload.Length));
        payload.CopyTo(frame, 5);
        return frame;
    }

    public static HttpRequestMessage Request(Uri server, string path, byte[] body, string contentType = "application/grpc")
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server, path))
        {
            Content = content,
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Headers.TryAddWithoutValidation("te", "trailers");
        return request;
    }

    /// <summary>grpc-status from the trailers, or from the headers of a Trailers-Only response.</summary>
    public static string? GrpcStatus(HttpResponseMessage response) =>
        Header(response.TrailingHeaders, "grpc-status") ?? Header(response.Headers, "grpc-status");

    public static string? GrpcMessage(HttpResponseMessage response) =>
        Header(response.TrailingHeaders, "grpc-message") ?? Header(response.Headers, "grpc-message");

    private static string? Header(HttpHeaders headers, string name) =>
        headers.NonValidated.TryGetValues(name, out var values) ? values.ToString() : null;
}
