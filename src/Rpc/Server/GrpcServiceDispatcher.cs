using Grpc.Core;
using Mesh.Rpc.Wire;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.Logging;

namespace Mesh.Rpc.Server;

/// <summary>
/// ASP.NET Core middleware that serves gRPC: it takes requests whose path is a bound method or whose
/// content-type is gRPC, and passes everything else down the pipeline.
/// </summary>
public sealed class GrpcServiceDispatcher
{
    private readonly Dictionary<string, IServerCallHandler> _handlers = new(StringComparer.Ordinal);
    private readonly GrpcServerOptions _options;
    private readonly ILogger _logger;

    public GrpcServiceDispatcher(GrpcServerOptions options, ILogger<GrpcServiceDispatcher> logger, IEnumerable<ServerServiceDefinition> services)
    {
        _options = options;
        _logger = logger;
        var binder = new Binder(_handlers);
        foreach (var service in services) service.BindService(binder);
    }

    public IEnumerable<string> Methods => _handlers.Keys;

    public Task InvokeAsync(HttpContext http, RequestDelegate next)
    {
        var request = http.Request;
        var path = request.Path.Value ?? "";
        var isGrpc = GrpcProtocol.IsGrpcContentType(request.ContentType);
        _handlers.TryGetValue(path, out var handler);
        if (handler is null && !isGrpc) return next(http);

        if (!HttpMethods.IsPost(request.Method))
        {
            http.Response.Headers.Allow = "POST";
            return RespondHttpError(http, StatusCodes.Status405MethodNotAllowed, $"Method '{request.Method}' is not supported; gRPC uses POST.");
        }
        if (!isGrpc)
        {
            return RespondHttpError(http, StatusCodes.Status415UnsupportedMediaType, $"Content-Type '{request.ContentType}' is not supported.");
        }
        if (!HttpProtocol.IsHttp2(request.Protocol))
        {
            return RespondHttpError(http, StatusCodes.Status426UpgradeRequired, $"Request protocol '{request.Protocol}' is not supported; gRPC needs HTTP/2.");
        }

        http.Response.ContentType = GrpcProtocol.ContentType;
        http.Response.Headers[GrpcProtocol.AcceptEncodingHeader] = GrpcProtocol.SupportedEncodings;
        if (handler is null) return RespondTrailersOnly(http, StatusCode.Unimplemented, $"Method {path} is unimplemented.");

        string? requestEncoding = request.Headers[GrpcProtocol.EncodingHeader];
        if (requestEncoding is not null && !GrpcProtocol.IsSupportedEncoding(requestEncoding))
        {
            return RespondTrailersOnly(http, StatusCode.Unimplemented, $"Unsupported grpc-encoding \"{requestEncoding}\"; supported: {GrpcProtocol.SupportedEncodings}.");
        }

        TimeSpan? timeout = null;
        string? timeoutHeader = request.Headers[GrpcProtocol.TimeoutHeader];
        if (timeoutHeader is not null)
        {
            if (!GrpcTimeout.TryParse(timeoutHeader, out var parsed))
            {
                return RespondTrailersOnly(http, StatusCode.Internal, $"Malformed grpc-timeout \"{timeoutHeader}\".");
            }
            timeout = parsed;
        }

        return ProcessCallAsync(http, handler, timeout, requestEncoding);
    }

    private async Task ProcessCallAsync(HttpContext http, IServerCallHandler handler, TimeSpan? timeout, string? requestEncoding)
    {
        // Long-lived streams are idle for minutes and may be large; Kestrel's HTTP/1 defaults do not apply.
        var bodySize = http.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (bodySize is { IsReadOnly: false }) bodySize.MaxRequestBodySize = null;
        var minRate = http.Features.Get<IHttpMinRequestBodyDataRateFeature>();
        if (minRate is not null) minRate.MinDataRate = null;
        var minResponseRate = http.Features.Get<IHttpMinResponseDataRateFeature>();
        if (minResponseRate is not null) minResponseRate.MinDataRate = null;

        var compress = _options.CompressResponses && AcceptsGzip(http.Request.Headers[GrpcProtocol.AcceptEncodingHeader]);
        if (compress) http.Response.Headers[GrpcProtocol.EncodingHeader] = GrpcProtocol.GzipEncoding;

        using var call = new HttpServerCallContext(http, handler.Method, _options, timeout, requestEncoding, compress);
        Status status;
        try
        {
            await handler.HandleAsync(call).ConfigureAwait(false);
            status = call.Status;
        }
        catch (RpcException ex)
        {
            status = ex.Status;
            foreach (var entry in ex.Trailers) call.ResponseTrailers.Add(entry);
        }
        catch (Exception ex) when (call.CancellationToken.IsCancellationRequested && ex is OperationCanceledException or IOException)
        {
            status = new Status(StatusCode.Cancelled, "Call canceled.");
        }
        catch (Exception ex)
        {
            _logger.LogError(ex, "Handler of {Method} threw.", handler.Method.FullName);
            status = new Status(StatusCode.Unknown, _options.EnableDetailedErrors
                ? $"Exception was thrown by handler. {ex.GetType().Name}: {ex.Message}"
                : "Exception was thrown by handler.");
        }
        if (call.DeadlineExceeded) status = new Status(StatusCode.DeadlineExceeded, "Deadline Exceeded");
        await call.FinishAsync(status).ConfigureAwait(false);
    }

    private static bool AcceptsGzip(string? acceptEncoding)
    {
        if (acceptEncoding is null) return false;
        foreach (var part in acceptEncoding.Split(',', StringSplitOptions.TrimEntries))
        {
            if (part.Equals(GrpcProtocol.GzipEncoding, StringComparison.OrdinalIgnoreCase)) return true;
        }
        return false;
    }

    private static Task RespondTrailersOnly(HttpContext http, StatusCode code, string message)
    {
        http.Response.Headers[GrpcProtocol.StatusTrailer] = ((int)code).ToString(System.Globalization.CultureInfo.InvariantCulture);
        http.Response.Headers[GrpcProtocol.MessageTrailer] = StatusMessage.Encode(message);
        return http.Response.CompleteAsync();
    }

    /// <summary>Requests that are not gRPC at the HTTP level get an HTTP error that gRPC clients also understand.</summary>
    private static Task RespondHttpError(HttpContext http, int httpStatus, string message)
    {
        http.Response.StatusCode = httpStatus;
        http.Response.Headers[GrpcProtocol.StatusTrailer] = ((int)StatusCode.Internal).ToString(System.Globalization.CultureInfo.InvariantCulture);
        http.Response.Headers[GrpcProtocol.MessageTrailer] = StatusMessage.Encode(message);
        return http.Response.CompleteAsync();
    }

    private sealed class Binder(Dictionary<string, IServerCallHandler> handlers) : ServiceBinderBase
    {
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler) => Add(method, handler);
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler) => Add(method, handler);
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler) => Add(method, handler);
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler) => Add(method, handler);

        private void Add<TRequest, TResponse>(Method<TRequest, TResponse> method, Delegate? handler)
            where TRequest : class where TResponse : class
        {
            if (handler is null) return;
            if (!handlers.TryAdd(method.FullName, new ServerCallHandler<TRequest, TResponse>(method, handler)))
            {
                throw new ArgumentException($"Method {method.FullName} is bound twice.");
            }
        }
    }
}
