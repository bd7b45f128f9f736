using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;
using Mesh.Control;
using Mesh.Protos.V1;
using Mesh.Traversal.Node;
using Mesh.WireGuard.Keys;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace Mesh.Traversal.Hosting;

/// <summary>
/// The agent's side of the control plane: registers the node key, keeps one sync stream open with one of the
/// coordinator's replicas, applies what arrives to the mesh node, and sends endpoint changes and connect requests
/// up. Whenever the stream breaks it moves on to the next replica, with exponential backoff and jitter, and
/// resumes from its serial; the data plane never waits on it. The agent runs it over gRPC channels, the NAT lab
/// over its virtual network and clock.
/// </summary>
public sealed class ControlClient : IDisposable
{
    private readonly ControlClientOptions _options;
    private readonly PrivateKey _key;
    private readonly MeshNode _node;
    private readonly ICoordinatorChannels _channels;
    private readonly ILogger _logger;
    private readonly CoordinatorTargets _targets;
    private readonly object _lock = new();
    private int _channelGeneration;
    private CancellationTokenSource? _session;
    private readonly ResiliencePipeline _reconnect;
    private readonly ControlOutbox _outbox;
    private string? _token;

    /// <param name="targets">The coordinator's replicas; the stream is held with one at a time.</param>
    /// <param name="outbox">What the node's path engine asks of the coordinator.</param>
    public ControlClient(ControlClientOptions options, CoordinatorTargets targets, PrivateKey key, MeshNode node, ControlOutbox outbox, ICoordinatorChannels channels, ILogger logger)
    {
        _outbox = outbox;
        _options = options;
        _key = key;
        _node = node;
        _channels = channels;
        _logger = logger;
        _targets = targets;
        _reconnect = new ResiliencePipelineBuilder { TimeProvider = options.Time }.AddRetry(new RetryStrategyOptions
        {
            Randomizer = options.Jitter.NextDouble,
            ShouldHandle = new PredicateBuilder().Handle<Exception>(ex => ex is not OperationCanceledException),
            MaxRetryAttempts = int.MaxValue,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = TimeSpan.FromMilliseconds(500),
            MaxDelay = TimeSpan.FromSeconds(10),
            OnRetry = args =>
            {
                _logger.LogWarning("Coordinator {Target}: {Message}; trying the next in {Delay:0.0}s", _targets.Current, Describe(args.Outcome.Exception), args.RetryDelay.TotalSeconds);
                return ValueTask.CompletedTask;
            },
        }).Build();
    }

    /// <summary>
    /// A refused certificate says so in one line (what to pass); gRPC nests it in its status under HTTP's wrapping.
    /// </summary>
    private static string? Describe(Exception? exception) =>
        Mesh.Control.ExceptionChain.Find<System.Security.Authentication.AuthenticationException>(exception)?.Message ?? exception?.Message;

    public RegisterResponse? Self { get; private set; }
    public bool Connected { get; private set; }

    /// <summary>The replica the stream is held with (or was last tried).</summary>
    public Uri Coordinator => _targets.Current.Url;

    /// <summary>Raised once the node is registered and approved, with its name and mesh addresses.</summary>
    public event Action<RegisterResponse>? Registered;

    /// <summary>
    /// The host's addresses changed: the stream's TCP connection is most likely dead, and waiting for keepalives
    /// to notice would hold back the new endpoints. Drop it and connect afresh.
    /// </summary>
    public void Reconnect()
    {
        lock (_lock)
        {
            _channelGeneration++;
            _session?.Cancel();
            _channels.Reset();
        }
    }

    private (CallInvoker Invoker, int Generation) InvokerFor(CoordinatorTarget target)
    {
        lock (_lock) return (_channels.For(target), _channelGeneration);
    }

    /// <summary>Runs until cancelled: each pass opens a session (with backoff) and holds it until it breaks.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var (call, generation, outbound) = await _reconnect.ExecuteAsync(OpenAsync, cancellationToken).ConfigureAwait(false);
                await HoldAsync(call, generation, outbound, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (OperationCanceledException)
            {
                _logger.LogInformation("Reconnecting to the coordinator after a network change");
            }
            catch (RpcException ex)
            {
                if (ex.StatusCode == StatusCode.Unauthenticated) _token = null;
                _logger.LogWarning("Sync stream with {Target} ended: {Status}", _targets.Current, ex.Status.Detail);
            }
            catch (Exception ex)
            {
                // Whatever ends a stream (a channel disposed under it after a network change, say) must not end
                // the loop that reconnects: the agent would stay cut off from the coordinator for good.
                _logger.LogWarning("Sync stream with {Target} ended: {Error}", _targets.Current, ex.Message);
            }
            finally
            {
                Connected = false;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(_options.Jitter.Next(200, 700)), _options.Time, cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask<(AsyncDuplexStreamingCall<SyncRequest, SyncResponse> Call, int Generation, ChannelReader<SyncRequest> Outbound)> OpenAsync(CancellationToken cancellationToken)
    {
        var target = await _targets.NextAsync(cancellationToken).ConfigureAwait(false);
        var (invoker, generation) = InvokerFor(target);
        if (_token is null)
        {
            var response = await Mesh.Control.Registration.RegisterAsync(new Protos.V1.Coordinator.CoordinatorClient(invoker), _key, _options.AuthKey, _options.Hostname, cancellationToken).ConfigureAwait(false);
            if (response.State == RegistrationState.Pending)
            {
                throw new InvalidOperationException($"node {response.Name} is waiting for an admin to approve it: mesh-coordinator nodes approve {response.ApprovalCode}");
            }
            _token = response.SessionToken;
            Self = response;
            _logger.LogInformation("Registered as {Name} with {Addresses}", response.Name, string.Join(", ", response.Addresses));
            Registered?.Invoke(response);
        }
        var client = new Protos.V1.Coordinator.CoordinatorClient(invoker);
        var (endpoints, outbound) = _outbox.StartSession();
        var hello = await Mesh.Control.Registration.HelloAsync(client, _key, _token!, _node.View.Serial, endpoints, cancellationToken).ConfigureAwait(false);
        var call = client.Sync(new Metadata { { "authorization", "Bearer " + _token } }, cancellationToken: cancellationToken);
        try
        {
            await call.RequestStream.WriteAsync(new SyncRequest { Hello = hello }).ConfigureAwait(false);
            if (!await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false)) throw new IOException("the coordinator closed the sync stream at once");
        }
        catch
        {
            call.Dispose();
            throw;
        }
        _node.Apply(call.ResponseStream.Current);
        return (call, generation, outbound);
    }

    private async Task HoldAsync(AsyncDuplexStreamingCall<SyncRequest, SyncResponse> call, int generation, ChannelReader<SyncRequest> outbound, CancellationToken cancellationToken)
    {
        using var session = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        lock (_lock)
        {
            // The network changed while this stream was opening: its connection is as stale as the channel.
            if (generation != _channelGeneration) session.Cancel();
            _session = session;
        }
        Connected = true;
        _logger.LogInformation("Connected to the coordinator at {Target}", _targets.Current);
        var writing = WriteAsync(call.RequestStream, outbound, session.Token);
        try
        {
            while (await call.ResponseStream.MoveNext(session.Token).ConfigureAwait(false)) _node.Apply(call.ResponseStream.Current);
        }
        finally
        {
            lock (_lock) _session = null;
            session.Cancel();
            // Ending the call fails a write still waiting on its HTTP/2 stream, so the writer always finishes.
            call.Dispose();
            await writing.ConfigureAwait(false);
        }
    }

    private static async Task WriteAsync(IClientStreamWriter<SyncRequest> requests, ChannelReader<SyncRequest> outbound, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var request in outbound.ReadAllAsync(cancellationToken).ConfigureAwait(false)) await requests.WriteAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or RpcException or IOException or InvalidOperationException)
        {
        }
    }

    public void Dispose()
    {
        lock (_lock) _channels.Dispose();
    }
}
