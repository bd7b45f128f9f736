using System.Net;
using System.Net.Sockets;
using Grpc.Core;
using Mesh.Coordinator.Control;
using Mesh.Protos.V1;
using Mesh.Transport;

namespace Mesh.Coordinator.Api;

/// <summary>mesh.v1.Coordinator: challenges, registration and the agents' sync streams, over <see cref="MeshState"/>.</summary>
public sealed class CoordinatorService(MeshState state, int stunPort, string? publicHost) : Protos.V1.Coordinator.CoordinatorBase
{
    private const int MaxCandidates = 64;
    private static readonly WriteOptions Batched = new(WriteFlags.BufferHint);
    private static readonly TimeSpan KeepaliveInterval = TimeSpan.FromSeconds(25);

    /// <summary>The service, with Sync's responses serialized once per message: every change goes to every agent as the same instance.</summary>
    public ServerServiceDefinition Bind() =>
        ServiceDefinitions.Bind(binder => Protos.V1.Coordinator.BindService(binder, this), method => method.Name == "Sync");

    public override Task<Challenge> GetChallenge(GetChallengeRequest request, ServerCallContext context) => Task.FromResult(state.IssueChallenge());

    public override Task<RegisterResponse> Register(RegisterRequest request, ServerCallContext context) => Task.FromResult(state.Register(request));

    public override async Task Sync(IAsyncStreamReader<SyncRequest> requestStream, IServerStreamWriter<SyncResponse> responseStream, ServerCallContext context)
    {
        var token = Auth.BearerToken(context) ?? throw new RpcException(new Status(StatusCode.Unauthenticated, "The sync stream needs `authorization: Bearer <session token>`."));
        var first = await ReadAsync(requestStream, context.CancellationToken);
        if (first is null) return;
        if (first.KindCase != SyncRequest.KindOneofCase.Hello) throw Invalid("The first message of a sync stream must be a hello.");
        if (first.Hello.Endpoints is { } initial) Validate(initial);

        var session = state.OpenSession(token, first.Hello, StunServers(context));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, session.Closed);
        var reading = ReadLoopAsync(requestStream, session, stop);
        try
        {
            await WriteLoopAsync(session, responseStream, stop.Token);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        finally
        {
            state.CloseSession(session);
            await stop.CancelAsync();
        }
        var readError = await reading;
        if (readError is not null) throw readError;
        if (session.CloseStatus is { StatusCode: not (StatusCode.OK or StatusCode.Cancelled) } status) throw new RpcException(status);
    }

    private static async Task WriteLoopAsync(SyncSession session, IServerStreamWriter<SyncResponse> responses, CancellationToken cancellationToken)
    {
        var keepalive = new SyncResponse { Keepalive = new Keepalive() };
        while (!cancellationToken.IsCancellationRequested)
        {
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            idle.CancelAfter(KeepaliveInterval);
            bool more;
            try
            {
                more = await session.Outbound.WaitToReadAsync(idle.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                await responses.WriteAsync(keepalive);
                continue;
            }
            if (!more) return;
            // Everything queued goes out in one flush: a burst of changes costs one write, not one per change.
            while (session.Outbound.TryRead(out var message))
            {
                responses.WriteOptions = session.Outbound.Count > 0 ? Batched : null;
                await responses.WriteAsync(message);
            }
        }
    }

    /// <summary>Applies what the agent sends; a bad message ends the stream with INVALID_ARGUMENT.</summary>
    private async Task<RpcException?> ReadLoopAsync(IAsyncStreamReader<SyncRequest> requests, SyncSession session, CancellationTokenSource stop)
    {
        try
        {
            while (await ReadAsync(requests, stop.Token) is { } request)
            {
                switch (request.KindCase)
                {
                    case SyncRequest.KindOneofCase.Endpoints:
                        Validate(request.Endpoints);
                        state.UpdateEndpoints(session, request.Endpoints);
                        break;
                    case SyncRequest.KindOneofCase.Connect:
                        if (request.Connect.PeerKey.Length != 32) throw Invalid("connect.peer_key must be 32 bytes.");
                        state.RequestConnection(session, request.Connect.PeerKey);
                        break;
                    default:
                        throw Invalid($"Unexpected {request.KindCase} message after the hello.");
                }
            }
            return null;
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.InvalidArgument)
        {
            return ex;
        }
        catch (Exception ex) when (ex is OperationCanceledException or RpcException)
        {
            return null;
        }
        finally
        {
            await stop.CancelAsync();
        }
    }

    /// <summary>The next request; a message that does not parse is INVALID_ARGUMENT, the end of the stream is null.</summary>
    private static async Task<SyncRequest?> ReadAsync(IAsyncStreamReader<SyncRequest> requests, CancellationToken cancellationToken)
    {
        try
        {
            return await requests.MoveNext(cancellationToken) ? requests.Current : null;
        }
        catch (Exception ex) when (ex is RpcException { StatusCode: StatusCode.Internal } or InvalidDataException)
        {
            // Framing the stack refused: an incomplete message, a bad compressed flag.
            throw Invalid($"Malformed sync message: {(ex is RpcException rpc ? rpc.Status.Detail : ex.Message)}");
        }
    }

    private static void Validate(Endpoints endpoints)
    {
        if (endpoints.Candidates.Count > MaxCandidates) throw Invalid($"At most {MaxCandidates} candidates.");
        foreach (var candidate in endpoints.Candidates)
        {
            if (!IPEndPoint.TryParse(candidate.Address, out var endpoint) || endpoint.Port == 0)
            {
                throw Invalid($"Candidate \"{candidate.Address}\" is not IP:PORT.");
            }
        }
        if (endpoints.PreferredRelay.Length > 64) throw Invalid("preferred_relay is too long.");
        if (endpoints.RelayAddress.Length > 0 && (!IPEndPoint.TryParse(endpoints.RelayAddress, out var relay) || relay.Port == 0))
        {
            throw Invalid($"relay_address \"{endpoints.RelayAddress}\" is not IP:PORT.");
        }
    }

    private IReadOnlyList<string> StunServers(ServerCallContext context)
    {
        var host = publicHost;
        if (host is null)
        {
            var local = context.GetHttpContext().Connection.LocalIpAddress ?? IPAddress.Loopback;
            if (local.IsIPv4MappedToIPv6) local = local.MapToIPv4();
            host = local.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{local}]" : local.ToString();
        }
        return [$"{host}:{stunPort}", $"{host}:{stunPort + 1}"];
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
}
