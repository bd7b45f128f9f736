using Grpc.Core;
using Mesh.Agent.Daemon;
using Mesh.Protos.V1;
using Mesh.Traversal.NatDiscovery;
using Mesh.Traversal.Paths;
using Mesh.Traversal.PortMapping;
using Mesh.WireGuard.Keys;

namespace Mesh.Agent.LocalApi;

/// <summary>mesh.v1.AgentControl on the agent's unix socket: what `mesh-agent status`, `ping` and `netcheck` ask.</summary>
public sealed class AgentControlService(AgentDaemon agent) : AgentControl.AgentControlBase
{
    private static readonly TimeSpan PingTimeout = TimeSpan.FromSeconds(2);

    public override Task<AgentStatus> Status(AgentStatusRequest request, ServerCallContext context)
    {
        var engine = agent.Node.Engine;
        var status = new AgentStatus
        {
            Name = agent.Control.Self?.Name ?? "",
            NodeKey = engine.PublicKey.ToBase64(),
            InterfaceName = agent.Options.InterfaceName,
            CoordinatorConnected = agent.Control.Connected,
            Coordinator = agent.Control.Coordinator.ToString(),
            HomeRelay = engine.HomeRelay ?? "",
            DroppedProbes = (ulong)(engine.ProbesRejected(Traversal.Probes.ProbeResult.BadMac) + engine.ProbesRejected(Traversal.Probes.ProbeResult.Replayed)
                + engine.ProbesRejected(Traversal.Probes.ProbeResult.UnknownSender) + engine.ProbesRejected(Traversal.Probes.ProbeResult.Malformed)),
            DroppedDatagrams = (ulong)agent.DroppedDatagrams,
            IgnoredPeers = (ulong)agent.Node.IgnoredPeers,
            RefusedRoutes = (ulong)agent.Node.Routes.Refused,
            ProbesOverBudget = (ulong)engine.ProbesOverBudget,
            IoFailures = (ulong)agent.IoFailures,
            Netcheck = Report(engine),
            DataPath = new DataPathStatus
            {
                TunOffloads = agent.DataPath.TunOffloadNames,
                UdpSegmentation = agent.DataPath.UdpSegmentation,
                UdpCoalescing = agent.DataPath.UdpCoalescing,
                Aead = WireGuard.Crypto.TransportCipher.Description,
            },
        };
        var filter = agent.Node.Filter;
        status.Policy = new PolicyFilterStatus { Active = filter.Active, Rules = (uint)filter.RuleCount };
        foreach (var reason in Enum.GetValues<Traversal.Node.FilterDrop>()) status.Policy.Dropped[Traversal.Node.PolicyFilter.Name(reason)] = (ulong)filter.Dropped(reason);
        if (agent.Control.Self is { } self) status.Addresses.AddRange(self.Addresses);
        foreach (var skipped in agent.SkippedAddresses)
        {
            status.SkippedAddresses.Add(new Protos.V1.SkippedAddress { Interface = skipped.Interface, Address = skipped.Address.ToString(), Reason = skipped.Reason });
        }
        var paths = engine.Snapshot().ToDictionary(p => p.Key);
        foreach (var entry in agent.Peers())
        {
            var key = new PublicKey(entry.NodeKey.Span);
            var wireGuard = agent.Node.Device.FindPeer(key);
            var path = paths.GetValueOrDefault(key);
            var item = new PeerStatus
            {
                Name = entry.Name,
                NodeKey = key.ToBase64(),
                Online = entry.Online,
                Path = path?.Path switch
                {
                    PathKind.Direct => "direct",
                    PathKind.Relay => "relay",
                    _ => "none",
                },
                Endpoint = path?.Endpoint?.ToString() ?? "",
                Relay = path?.Relay ?? "",
                RelayTransport = path is { Path: PathKind.Relay } relayed ? (relayed.RelayOverTcp ? "tcp" : "udp") : "",
                LatencyMs = path?.Latency?.TotalMilliseconds ?? 0,
                Technique = path?.Technique.Name() ?? "",
                LatestHandshake = wireGuard?.LatestHandshake is { } at ? new DateTimeOffset(at).ToUnixTimeSeconds() : 0,
                RxBytes = (ulong)(wireGuard?.RxBytes ?? 0),
                TxBytes = (ulong)(wireGuard?.TxBytes ?? 0),
                Reason = path?.Reason ?? "",
                NatMapping = entry.Endpoints?.NatMapping.ToString() ?? "",
            };
            item.Addresses.AddRange(entry.Addresses);
            status.Peers.Add(item);
        }
        foreach (var stream in agent.RelayStreams)
        {
            status.RelayStreams.Add(new RelayStreamStatus
            {
                Relay = stream.RelayId,
                Url = stream.Url.ToString(),
                State = stream.State.ToString().ToLowerInvariant(),
                Transport = stream.Transport ?? "",
                Error = stream.LastError ?? "",
                DroppedFrames = (ulong)stream.DroppedFrames,
            });
        }
        return Task.FromResult(status);
    }

    public override async Task Ping(AgentPingRequest request, IServerStreamWriter<AgentPingReply> responseStream, ServerCallContext context)
    {
        var peer = agent.FindPeer(request.Peer) ?? throw new RpcException(new Status(StatusCode.NotFound, $"no peer \"{request.Peer}\" (give a name, mesh address or node key)"));
        var count = request.Count == 0 ? 10u : request.Count;
        var engine = agent.Node.Engine;
        for (var sequence = 1u; sequence <= count && !context.CancellationToken.IsCancellationRequested; sequence++)
        {
            var started = DateTime.UtcNow;
            var reply = new AgentPingReply { Sequence = sequence, TimedOut = true };
            if (engine.StartPing(peer) is { } transaction)
            {
                while (DateTime.UtcNow - started < PingTimeout)
                {
                    if (engine.TryTakePingReply(transaction, out var pong))
                    {
                        reply = new AgentPingReply
                        {
                            Sequence = sequence,
                            Path = pong.Path == PathKind.Direct ? "direct" : "relay",
                            Endpoint = pong.Endpoint?.ToString() ?? "",
                            Relay = pong.Relay ?? "",
                            LatencyMs = pong.Latency.TotalMilliseconds,
                        };
                        break;
                    }
                    await Task.Delay(5, context.CancellationToken);
                }
            }
            await responseStream.WriteAsync(reply);
            if (request.UntilDirect && reply.Path == "direct") return;
            var wait = TimeSpan.FromSeconds(1) - (DateTime.UtcNow - started);
            if (wait > TimeSpan.Zero && sequence < count) await Task.Delay(wait, context.CancellationToken);
        }
    }

    public override async Task<NetcheckResult> Netcheck(NetcheckRequest request, ServerCallContext context)
    {
        var engine = agent.Node.Engine;
        var before = engine.LastNetcheck?.At;
        engine.RunNetcheck();
        var until = DateTime.UtcNow + NetcheckProbe.Deadline + TimeSpan.FromSeconds(1);
        while (DateTime.UtcNow < until && engine.LastNetcheck?.At == before) await Task.Delay(20, context.CancellationToken);
        return Report(engine);
    }

    private static NetcheckResult Report(PathEngine engine)
    {
        var report = new NetcheckResult();
        if (engine.PublishedEndpoints is { } published)
        {
            foreach (var candidate in published.Candidates)
            {
                if (candidate.Kind == CandidateKind.Local) report.LocalCandidates.Add(candidate.Address);
            }
        }
        if (engine.PortMapping is { } mapping)
        {
            report.PortMapping = new PortMappingStatus
            {
                Protocol = PortMapStatus.NameOf(mapping.Protocol),
                External = mapping.External?.ToString() ?? "",
                State = mapping.State,
                Error = mapping.Failure ?? "",
                ExpiresInSeconds = mapping.ExpiresIn?.TotalSeconds ?? 0,
            };
        }
        if (engine.LastNetcheck is not { } last) return report;
        var verdict = last.Report.Verdict;
        report.Mapping = verdict.Mapping switch
        {
            NatMappingKind.None => "none (public address)",
            NatMappingKind.EndpointIndependent => "endpoint-independent (easy NAT)",
            NatMappingKind.EndpointDependent => "endpoint-dependent (hard NAT: ports vary by destination)",
            _ => "unknown",
        };
        report.Reflexive = verdict.Reflexive?.ToString() ?? "";
        report.UdpBlocked = verdict.UdpBlocked;
        report.Reason = verdict.Reason;
        report.StunLatencyMs = last.Report.FirstLatency?.TotalMilliseconds ?? 0;
        return report;
    }
}
