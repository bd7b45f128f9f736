using System.Net;
using System.Net.Sockets;
using Grpc.Core;
using Google.Protobuf;
using Mesh.Coordinator.Control;
using Mesh.Coordinator.Sync;
using Mesh.Protos.V1;
using Mesh.Transport;
using Mesh.WireGuard.Keys;

namespace Mesh.Coordinator.Api;

/// <summary>
/// mesh.v1.Coordinator: stateless challenges, registration through the node registry, the agents' sync streams
/// through this replica's hub. A stream must open with a hello within <see cref="HelloTimeout"/> that proves the
/// node key its token belongs to over a fresh challenge. Cancellations run their callbacks inline and the timers
/// are on the given clock, so the NAT lab can drive the service on its one thread and virtual time.
/// </summary>
public sealed class CoordinatorService(IRegistrar registry, Challenges challenges, SyncHub hub, int stunPort, string? publicHost, TimeProvider time)
    : Protos.V1.Coordinator.CoordinatorBase
{
    public const int MaxCandidates = 16;
    public static readonly TimeSpan HelloTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// What one stream may send: endpoint updates (an agent sends a few when its network changes) and connect
    /// requests (one per peer it starts talking to), each a burst and then a steady rate. Beyond that, connect
    /// requests are dropped and endpoint updates held (the latest applied when the rate allows), and both are counted:
    /// a member cannot make the mesh chase addresses it names as fast as it likes.
    /// </summary>
    public const int EndpointBurst = 20;
    public const double EndpointsPerSecond = 1;
    public const int ConnectBurst = 64;
    public const double ConnectsPerSecond = 4;

    private long _throttled;
    private long _droppedCandidates;

    /// <summary>Endpoint updates held and connect requests dropped for going over their stream's rate.</summary>
    public long Throttled => Interlocked.Read(ref _throttled);

    /// <summary>STUN and port-mapping candidates dropped for not carrying the address their stream came from.</summary>
    public long DroppedCandidates => Interlocked.Read(ref _droppedCandidates);

    /// <summary>Hellos proved on this replica within a challenge's lifetime.</summary>
    private const int MaxUsedNonces = 100_000;
    private readonly UsedNonces _usedNonces = new(MaxUsedNonces, time);
    private static readonly WriteOptions Batched = new(WriteFlags.BufferHint);

    /// <summary>The most bytes a stream's writer buffers before it flushes (and waits for the stream to take them).</summary>
    private const int FlushBytes = 32 * 1024;
    private static readonly TimeSpan KeepaliveInterval = TimeSpan.FromSeconds(25);

    /// <summary>The service, with Sync's responses serialized once per message: every change goes to every agent as the same instance.</summary>
    public ServerServiceDefinition Bind() => ServiceDefinitions.Build(Bind);

    /// <summary>Binds the service to a binder of another server (the NAT lab's).</summary>
    public void Bind(ServiceBinderBase binder) =>
        ServiceDefinitions.BindTo(binder, wrapped => Protos.V1.Coordinator.BindService(wrapped, this), method => method.Name == "Sync");

    public override Task<Challenge> GetChallenge(GetChallengeRequest request, ServerCallContext context)
    {
        var challenge = challenges.Issue();
        return Task.FromResult(new Challenge { CoordinatorKey = ByteString.CopyFrom(challenge.CoordinatorKey), Nonce = ByteString.CopyFrom(challenge.Nonce) });
    }

    public override async Task<RegisterResponse> Register(RegisterRequest request, ServerCallContext context)
    {
        var registration = (await registry.RegisterAsync(new RegistrationRequest(
            request.NodeKey.ToByteArray(), request.AuthKey, request.Hostname, request.Nonce.ToByteArray(), request.Proof.ToByteArray()))).OrThrow();
        return new RegisterResponse
        {
            State = registration.Approved ? RegistrationState.Approved : RegistrationState.Pending,
            NodeId = (ulong)registration.NodeId,
            Name = registration.Name,
            Addresses = { registration.Addresses },
            SessionToken = registration.SessionToken,
            ApprovalCode = registration.ApprovalCode,
        };
    }

    public override async Task Sync(IAsyncStreamReader<SyncRequest> requestStream, IServerStreamWriter<SyncResponse> responseStream, ServerCallContext context)
    {
        var token = Auth.BearerToken(context) ?? throw new RpcException(new Status(StatusCode.Unauthenticated, "The sync stream needs `authorization: Bearer <session token>`."));
        var first = await ReadHelloAsync(requestStream, context.CancellationToken);
        if (first is null) return;
        if (first.KindCase != SyncRequest.KindOneofCase.Hello) throw Invalid("The first message of a sync stream must be a hello.");
        var source = CandidateScreen.SourceOf(context.Peer);
        if (first.Hello.Endpoints is { } initial) Screen(initial, source);
        var nodeKey = Prove(first.Hello, token);

        var session = (await hub.OpenAsync(token, nodeKey, first.Hello, StunServers(context))).OrThrow();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, session.Closed);
        var reading = ReadLoopAsync(requestStream, session, source, stop);
        try
        {
            await WriteLoopAsync(session, responseStream, stop.Token);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        finally
        {
            hub.Close(session);
            stop.Cancel();
        }
        var readError = await reading;
        if (readError is not null) throw readError;
        if (session.CloseReason is { } reason) throw reason.ToRpc();
    }

    private async Task WriteLoopAsync(SyncSession session, IServerStreamWriter<SyncResponse> responses, CancellationToken cancellationToken)
    {
        var keepalive = new SyncResponse { Keepalive = new Keepalive() };
        while (!cancellationToken.IsCancellationRequested)
        {
            // One source per wait, as a linked one with CancelAfter was, but timed by the injected clock.
            using var idle = new CancellationTokenSource(KeepaliveInterval, time);
            using var stopped = cancellationToken.UnsafeRegister(static source => ((CancellationTokenSource)source!).Cancel(), idle);
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
            // What is queued goes out in flushes of up to FlushBytes: a burst of changes costs one write, not one per
            // change, and a flush waits for the HTTP/2 stream to take the bytes, so a stream that reads slowly holds at
            // most that much (and the part of a map written last) in the coordinator's buffers.
            var unflushed = 0;
            while (session.Outbound.TryRead(out var message))
            {
                unflushed += ServiceDefinitions.WireBytes(message).Length;
                var flush = session.Outbound.Count == 0 || unflushed >= FlushBytes;
                responses.WriteOptions = flush ? null : Batched;
                await responses.WriteAsync(message);
                if (flush) unflushed = 0;
            }
        }
    }

    /// <summary>Applies what the agent sends; a bad message ends the stream with INVALID_ARGUMENT.</summary>
    private async Task<RpcException?> ReadLoopAsync(IAsyncStreamReader<SyncRequest> requests, SyncSession session, IPAddress? source, CancellationTokenSource stop)
    {
        using var endpointUpdates = new ThrottledEndpoints(hub, session, time, EndpointBurst, EndpointsPerSecond);
        var connectRequests = new Traversal.TokenBucket(ConnectBurst, ConnectsPerSecond);
        try
        {
            while (await ReadAsync(requests, stop.Token) is { } request)
            {
                switch (request.KindCase)
                {
                    case SyncRequest.KindOneofCase.Endpoints:
                        Screen(request.Endpoints, source);
                        if (!endpointUpdates.Offer(request.Endpoints)) Interlocked.Increment(ref _throttled);
                        break;
                    case SyncRequest.KindOneofCase.Connect:
                        if (request.Connect.PeerKey.Length != 32) throw Invalid("connect.peer_key must be 32 bytes.");
                        if (connectRequests.TryTake(Now)) await hub.RequestConnectionAsync(session, request.Connect.PeerKey);
                        else Interlocked.Increment(ref _throttled);
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
            stop.Cancel();
        }
    }

    /// <summary>The hello, which must come within <see cref="HelloTimeout"/>: a stream that never says who it is holds nothing for long.</summary>
    private async Task<SyncRequest?> ReadHelloAsync(IAsyncStreamReader<SyncRequest> requests, CancellationToken cancellationToken)
    {
        using var deadline = new CancellationTokenSource(HelloTimeout, time);
        using var stopped = cancellationToken.UnsafeRegister(static source => ((CancellationTokenSource)source!).Cancel(), deadline);
        try
        {
            return await ReadAsync(requests, deadline.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"No hello within {HelloTimeout.TotalSeconds:0} s of opening the sync stream."));
        }
    }

    /// <summary>The node key the hello proves over a fresh, unused challenge and the stream's token; UNAUTHENTICATED otherwise.</summary>
    private PublicKey Prove(SyncHello hello, string token)
    {
        if (hello.NodeKey.Length != PublicKey.Size || hello.Nonce.Length != Challenges.NonceSize || hello.Proof.Length != Mesh.Control.RegistrationProof.Size)
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated, "The hello must prove the node key (node_key, a challenge's nonce and a proof); an agent older than this coordinator must be upgraded."));
        }
        var nodeKey = new PublicKey(hello.NodeKey.Span);
        if (challenges.VerifySync(nodeKey, hello.Nonce.Span, token, hello.Proof.Span) is not { } expiry)
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated, "The hello's proof of the node key does not verify, or its challenge expired; ask for a new one."));
        }
        UsedNonces.Outcome outcome;
        lock (_usedNonces) outcome = _usedNonces.TryUse(hello.Nonce.Span, expiry);
        return outcome switch
        {
            UsedNonces.Outcome.Fresh => nodeKey,
            UsedNonces.Outcome.Replayed => throw new RpcException(new Status(StatusCode.Unauthenticated, "The hello's challenge was used already; ask for a new one.")),
            _ => throw new RpcException(new Status(StatusCode.ResourceExhausted, "Too many streams opening at once; try again shortly.")),
        };
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

    private TimeSpan Now => time.GetUtcNow() - DateTimeOffset.UnixEpoch;

    /// <summary>Validates the endpoints, and drops the candidates the stream cannot vouch for (<see cref="CandidateScreen"/>).</summary>
    private void Screen(Endpoints endpoints, IPAddress? source)
    {
        Validate(endpoints);
        var dropped = CandidateScreen.Screen(endpoints, source);
        if (dropped > 0) Interlocked.Add(ref _droppedCandidates, dropped);
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
