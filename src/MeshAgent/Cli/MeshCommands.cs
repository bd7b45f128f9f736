using System.CommandLine;
using System.Text.Json;
using Grpc.Core;
using Mesh.Agent.Daemon;
using Mesh.Protos.V1;
using Mesh.Transport;
using Microsoft.Extensions.Logging;

namespace Mesh.Agent.Cli;

/// <summary>Mesh mode: `up`, `down`, and `status`, `ping`, `netcheck` against a running agent's local socket.</summary>
internal static class MeshCommands
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static IEnumerable<Command> Build()
    {
        var stateDir = new Option<string>("--state-dir") { Description = "Where the agent keeps its key, pid file, log and control socket.", DefaultValueFactory = _ => AgentOptions.DefaultStateDir() };
        yield return Up(stateDir);
        yield return Down(stateDir);
        yield return Status(stateDir);
        yield return Ping(stateDir);
        yield return Netcheck(stateDir);
    }

    private static Command Up(Option<string> stateDir)
    {
        var coordinator = new Option<string>("--coordinator")
        {
            Description = "The coordinator's URL, e.g. https://coord.example.net:8443; for a cluster, its replicas' URLs separated by commas (a name with several addresses counts as several). Default: $MESH_COORDINATOR.",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("MESH_COORDINATOR") ?? "",
        };
        var authKey = new Option<string>("--auth-key") { Description = "A pre-auth key from `mesh-coordinator keys create` (without one the node waits for approval); better given as $MESH_AUTH_KEY, which keeps it out of the process list.", DefaultValueFactory = _ => Environment.GetEnvironmentVariable("MESH_AUTH_KEY") ?? "" };
        var pin = new Option<string?>("--coordinator-pin")
        {
            Description = "Trust the coordinator whose self-signed certificate has this pin (sha256:..., printed by `mesh-coordinator status` and `keys create`). Default: $MESH_COORDINATOR_PIN.",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("MESH_COORDINATOR_PIN") is { Length: > 0 } fromEnvironment ? fromEnvironment : null,
        };
        var caCert = new Option<FileInfo?>("--ca-cert") { Description = "PEM certificate of a private CA that signed the coordinator's certificate." };
        var insecurePlaintext = new Option<bool>("--insecure-plaintext") { Description = "Allow an http:// coordinator on another host (only behind a TLS-terminating proxy you trust the path to)." };
        var interfaceName = new Option<string>("--interface") { Description = "Name of the TUN interface.", DefaultValueFactory = _ => "mesh0" };
        var port = new Option<int>("--port") { Description = "UDP port for WireGuard, STUN and probes (0: any).", DefaultValueFactory = _ => AgentOptions.DefaultListenPort };
        var hostname = new Option<string>("--hostname") { Description = "The name to register under.", DefaultValueFactory = _ => Environment.MachineName };
        var relay = new Option<bool>("--relay") { Description = "Also relay for the mesh (for a node with a public address)." };
        var relayPort = new Option<int>("--relay-port") { Description = "UDP port of this node's relay.", DefaultValueFactory = _ => AgentOptions.DefaultRelayPort };
        var relayAddress = new Option<string?>("--relay-address") { Description = "ip:port peers reach this node's relay at (default: its public address as STUN sees it)." };
        var foreground = new Option<bool>("--foreground", "-f") { Description = "Stay in the foreground (systemd units, tests) instead of detaching." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Log debug details." };
        var up = new Command("up", "Join the mesh: register, bring the interface up and keep peers connected.")
        {
            coordinator, authKey, pin, caCert, insecurePlaintext, stateDir, interfaceName, port, hostname, relay, relayPort, relayAddress, foreground, verbose,
        };
        up.SetAction(async (parse, cancellationToken) =>
        {
            var urls = new List<Uri>();
            foreach (var text in parse.GetValue(coordinator)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (!Uri.TryCreate(text, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
                {
                    Console.Error.WriteLine($"mesh-agent: --coordinator: \"{text}\" is not an https:// URL.");
                    return 2;
                }
                if (PlaintextPolicy.Refusal(url, parse.GetValue(insecurePlaintext), "--coordinator") is { } refusal)
                {
                    Console.Error.WriteLine($"mesh-agent: {refusal}");
                    return 2;
                }
                urls.Add(url);
            }
            var pinned = parse.GetValue(pin);
            if (pinned is not null && CertificatePin.Check(pinned) is { } badPin)
            {
                Console.Error.WriteLine($"mesh-agent: --coordinator-pin: {badPin}");
                return 2;
            }
            ServerTrust trust;
            try
            {
                trust = new ServerTrust(parse.GetValue(caCert) is { } ca ? System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificateFromFile(ca.FullName) : null, pinned);
            }
            catch (Exception ex) when (ex is IOException or System.Security.Cryptography.CryptographicException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"mesh-agent: --ca-cert: {ex.Message}");
                return 2;
            }
            if (urls.Count == 0)
            {
                Console.Error.WriteLine("mesh-agent: --coordinator: give the coordinator's URL (or set $MESH_COORDINATOR).");
                return 2;
            }
            var options = new AgentOptions
            {
                Coordinators = urls,
                AuthKey = parse.GetValue(authKey)!,
                Trust = trust,
                StateDir = Path.GetFullPath(parse.GetValue(stateDir)!),
                InterfaceName = parse.GetValue(interfaceName)!,
                ListenPort = parse.GetValue(port),
                Hostname = parse.GetValue(hostname)!,
                Relay = parse.GetValue(relay),
                RelayPort = parse.GetValue(relayPort),
                RelayAddress = parse.GetValue(relayAddress),
            };
            if (options.ListenPort is < 0 or > 65535 || options.RelayPort is < 0 or > 65535)
            {
                Console.Error.WriteLine("mesh-agent: --port and --relay-port take a port from 0 to 65535.");
                return 2;
            }
            if (parse.GetValue(foreground)) return await RunAsync(options, parse.GetValue(verbose), cancellationToken);
            Directory.CreateDirectory(options.StateDir);
            var pidFile = Path.Combine(options.StateDir, AgentOptions.PidFile);
            // The daemon gets the key through its environment: a process's argv is readable by every local user.
            var arguments = new List<string> { "up", "--foreground" };
            var tokens = parse.Tokens;
            for (var i = 0; i < tokens.Count; i++)
            {
                if (tokens[i].Value is "--auth-key") i++;
                else if (tokens[i].Value.StartsWith("--auth-key=", StringComparison.Ordinal) || tokens[i].Value is "up" or "--foreground" or "-f") continue;
                else arguments.Add(tokens[i].Value);
            }
            if (parse.GetResult(stateDir) is null) arguments.AddRange(["--state-dir", options.StateDir]);
            if (parse.GetResult(coordinator) is null) arguments.AddRange(["--coordinator", string.Join(',', urls)]);
            return await Daemonize.DetachAsync(arguments, new Dictionary<string, string> { ["MESH_AUTH_KEY"] = options.AuthKey }, Path.Combine(options.StateDir, AgentOptions.LogFile),
                () => File.Exists(pidFile) && File.Exists(options.SocketPath),
                () => $"agent is up (pid {File.ReadAllText(pidFile).Trim()}, state {options.StateDir}); see `mesh-agent status`", "the agent");
        });
        return up;
    }

    private static async Task<int> RunAsync(AgentOptions options, bool verbose, CancellationToken cancellationToken)
    {
        using var loggers = LoggerFactory.Create(logging =>
        {
            logging.SetMinimumLevel(verbose ? LogLevel.Debug : LogLevel.Information);
            logging.AddSimpleConsole(c =>
            {
                c.SingleLine = true;
                c.TimestampFormat = "HH:mm:ss.fff ";
            });
        });
        var (stop, signals) = Daemonize.OnTerminate();
        using var _ = signals;
        AgentDaemon agent;
        try
        {
            agent = await AgentDaemon.StartAsync(options, loggers);
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or InvalidDataException or UnauthorizedAccessException or System.Net.Sockets.SocketException or FormatException)
        {
            Console.Error.WriteLine($"mesh-agent: {ex.Message}");
            return 1;
        }
        var pidFile = Path.Combine(options.StateDir, AgentOptions.PidFile);
        await File.WriteAllTextAsync(pidFile, Environment.ProcessId + "\n", CancellationToken.None);
        try
        {
            await Task.WhenAny(stop, agent.Stopped, Task.Delay(Timeout.Infinite, cancellationToken));
        }
        finally
        {
            await agent.DisposeAsync();
            File.Delete(pidFile);
        }
        return 0;
    }

    private static Command Down(Option<string> stateDir)
    {
        var down = new Command("down", "Stop the agent started by `mesh-agent up`.") { stateDir };
        down.SetAction((parse, cancellationToken) =>
        {
            var dir = Path.GetFullPath(parse.GetValue(stateDir)!);
            return Daemonize.StopAsync(Path.Combine(dir, AgentOptions.PidFile), "the agent", $"no agent is running with state dir {dir}", Path.Combine(dir, AgentOptions.LogFile), cancellationToken);
        });
        return down;
    }

    private static Command Status(Option<string> stateDir)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var status = new Command("status", "Show this node and, for every peer, its path and why.") { stateDir, json };
        status.SetAction((parse, cancellationToken) => WithAgent(parse.GetValue(stateDir)!, async client =>
        {
            var reply = await client.StatusAsync(new AgentStatusRequest(), cancellationToken: cancellationToken);
            Console.Write(parse.GetValue(json) ? StatusJson(reply) : StatusText(reply));
            return 0;
        }));
        return status;
    }

    private static Command Ping(Option<string> stateDir)
    {
        var peer = new Argument<string>("peer") { Description = "Peer name, mesh address or node key." };
        var count = new Option<uint>("--count", "-c") { Description = "How many pings.", DefaultValueFactory = _ => 10 };
        var untilDirect = new Option<bool>("--until-direct") { Description = "Stop at the first reply over a direct path." };
        var ping = new Command("ping", "Ping a peer through the mesh and show which path each reply took.") { peer, count, untilDirect, stateDir };
        ping.SetAction((parse, cancellationToken) => WithAgent(parse.GetValue(stateDir)!, async client =>
        {
            var target = parse.GetValue(peer)!;
            using var call = client.Ping(new AgentPingRequest { Peer = target, Count = parse.GetValue(count), UntilDirect = parse.GetValue(untilDirect) }, cancellationToken: cancellationToken);
            var sawDirect = false;
            var answered = 0;
            while (await call.ResponseStream.MoveNext(cancellationToken))
            {
                var reply = call.ResponseStream.Current;
                if (reply.TimedOut)
                {
                    Console.WriteLine($"{reply.Sequence}: no reply from {target}");
                    continue;
                }
                answered++;
                var via = reply.Path == "direct" ? $"direct {reply.Endpoint}" : $"relay {reply.Relay}";
                var note = reply.Path == "direct" && !sawDirect && answered > 1 ? " (now direct)" : "";
                sawDirect |= reply.Path == "direct";
                Console.WriteLine($"{reply.Sequence}: pong from {target} via {via} in {reply.LatencyMs:0.0} ms{note}");
            }
            return answered > 0 ? 0 : 1;
        }));
        return ping;
    }

    private static Command Netcheck(Option<string> stateDir)
    {
        var netcheck = new Command("netcheck", "Run NAT discovery now and show the report.") { stateDir };
        netcheck.SetAction((parse, cancellationToken) => WithAgent(parse.GetValue(stateDir)!, async client =>
        {
            var report = await client.NetcheckAsync(new NetcheckRequest(), cancellationToken: cancellationToken);
            Console.WriteLine($"NAT mapping:      {report.Mapping}");
            Console.WriteLine($"public address:   {(report.Reflexive.Length > 0 ? report.Reflexive : "-")}");
            Console.WriteLine($"UDP:              {(report.UdpBlocked ? "blocked (relay over TCP)" : "works")}");
            Console.WriteLine($"STUN latency:     {report.StunLatencyMs:0.0} ms");
            Console.WriteLine($"local candidates: {string.Join(", ", report.LocalCandidates)}");
            Console.WriteLine($"port mapping:     {PortMappingText(report.PortMapping)}");
            Console.WriteLine($"verdict:          {report.Reason}");
            return 0;
        }));
        return netcheck;
    }

    private static async Task<int> WithAgent(string stateDir, Func<AgentControl.AgentControlClient, Task<int>> action)
    {
        var socket = Path.Combine(Path.GetFullPath(stateDir), AgentOptions.SocketFile);
        if (!File.Exists(socket))
        {
            Console.Error.WriteLine($"mesh-agent: no agent is running with state dir {Path.GetFullPath(stateDir)} (start one with `mesh-agent up`)");
            return 1;
        }
        using var channel = GrpcChannels.ForUnixSocket(socket);
        try
        {
            return await action(new AgentControl.AgentControlClient(channel));
        }
        catch (RpcException ex)
        {
            Console.Error.WriteLine($"mesh-agent: {ex.Status.Detail}");
            return 1;
        }
    }

    private static string StatusText(AgentStatus status)
    {
        var text = new System.Text.StringBuilder();
        text.AppendLine($"{status.Name} {string.Join(" ", status.Addresses)} on {status.InterfaceName}; coordinator {status.Coordinator} ({(status.CoordinatorConnected ? "connected" : "disconnected")}); relay {(status.HomeRelay.Length > 0 ? status.HomeRelay : "-")}");
        if (status.Netcheck is { Mapping.Length: > 0 } nat) text.AppendLine($"NAT: {nat.Mapping}, public {(nat.Reflexive.Length > 0 ? nat.Reflexive : "-")}");
        if (status.Netcheck?.PortMapping is { } mapping) text.AppendLine($"port mapping: {PortMappingText(mapping)}");
        if (status.DataPath is { } data) text.AppendLine($"data path: TUN offloads {data.TunOffloads}, UDP GSO {(data.UdpSegmentation ? "on" : "off")}, GRO {(data.UdpCoalescing ? "on" : "off")}; ChaCha20-Poly1305 by {data.Aead}");
        if (status.IgnoredPeers + status.RefusedRoutes + status.ProbesOverBudget + status.IoFailures > 0)
        {
            text.AppendLine($"refused from the coordinator's maps: {status.IgnoredPeers} peers with unusable keys, {status.RefusedRoutes} routes (see the log); probes over budget {status.ProbesOverBudget}; I/O failures {status.IoFailures}");
        }
        foreach (var skipped in status.SkippedAddresses) text.AppendLine($"not offered to peers: {skipped.Address} on {skipped.Interface} ({skipped.Reason})");
        if (status.Policy is { Active: true } policy)
        {
            var dropped = string.Join(", ", policy.Dropped.Where(d => d.Value > 0).OrderBy(d => d.Key, StringComparer.Ordinal).Select(d => $"{d.Key} {d.Value}"));
            text.AppendLine($"policy: {policy.Rules} rules let peers in; dropped {(dropped.Length > 0 ? dropped : "nothing")}");
        }
        else text.AppendLine("policy: none (every peer may open anything)");
        text.AppendLine();
        text.AppendLine($"{"PEER",-16} {"ADDRESS",-16} {"PATH",-7} {"VIA",-24} {"LATENCY",8} {"HANDSHAKE",10} {"RX",10} {"TX",10}  WHY");
        foreach (var peer in status.Peers)
        {
            var via = peer.Path == "direct" ? $"{peer.Endpoint} ({peer.Technique})" : peer.Relay.Length > 0 ? $"{peer.Relay} ({peer.RelayTransport})" : "-";
            var handshake = peer.LatestHandshake == 0 ? "-" : $"{(DateTimeOffset.UtcNow - DateTimeOffset.FromUnixTimeSeconds(peer.LatestHandshake)).TotalSeconds:0}s ago";
            var address = peer.Addresses.FirstOrDefault()?.Split('/')[0] ?? "-";
            var latency = peer.LatencyMs > 0 ? $"{peer.LatencyMs:0.0}ms" : "-";
            text.AppendLine($"{peer.Name,-16} {address,-16} {peer.Path,-7} {via,-24} {latency,8} {handshake,10} {peer.RxBytes,10} {peer.TxBytes,10}  {peer.Reason}");
        }
        foreach (var stream in status.RelayStreams)
        {
            var detail = stream.State == "connected" ? stream.Transport : stream.Error;
            text.AppendLine($"relay {stream.Relay} over TCP at {stream.Url}: {stream.State}{(detail.Length > 0 ? $" ({detail})" : "")}");
        }
        return text.ToString();
    }

    private static string PortMappingText(PortMappingStatus? mapping) => mapping switch
    {
        null => "no IPv4 gateway to ask",
        { External.Length: > 0 } => $"{mapping.External} by {mapping.Protocol} ({mapping.State}, {mapping.ExpiresInSeconds:0}s left)",
        _ => $"{mapping.State}{(mapping.Error.Length > 0 ? $": {mapping.Error}" : "")}",
    };

    private static string StatusJson(AgentStatus status) => JsonSerializer.Serialize(new
    {
        name = status.Name,
        nodeKey = status.NodeKey,
        addresses = status.Addresses.ToArray(),
        @interface = status.InterfaceName,
        coordinator = status.Coordinator,
        coordinatorConnected = status.CoordinatorConnected,
        relay = status.HomeRelay,
        nat = status.Netcheck is null ? null : new { mapping = status.Netcheck.Mapping, publicAddress = status.Netcheck.Reflexive, udpBlocked = status.Netcheck.UdpBlocked },
        portMapping = status.Netcheck?.PortMapping is not { } portMapping ? null : new
        {
            protocol = portMapping.Protocol.Length > 0 ? portMapping.Protocol : null,
            external = portMapping.External.Length > 0 ? portMapping.External : null,
            state = portMapping.State,
            error = portMapping.Error.Length > 0 ? portMapping.Error : null,
            expiresInSeconds = portMapping.External.Length > 0 ? Math.Round(portMapping.ExpiresInSeconds) : (double?)null,
        },
        droppedProbes = status.DroppedProbes,
        droppedDatagrams = status.DroppedDatagrams,
        ignoredPeers = status.IgnoredPeers,
        refusedRoutes = status.RefusedRoutes,
        probesOverBudget = status.ProbesOverBudget,
        ioFailures = status.IoFailures,
        policy = status.Policy is null ? null : new { active = status.Policy.Active, rules = status.Policy.Rules, dropped = status.Policy.Dropped.ToDictionary(d => d.Key, d => d.Value) },
        skippedAddresses = status.SkippedAddresses.Select(a => new { @interface = a.Interface, address = a.Address, reason = a.Reason }).ToArray(),
        dataPath = status.DataPath is null ? null : new { tunOffloads = status.DataPath.TunOffloads, udpGso = status.DataPath.UdpSegmentation, udpGro = status.DataPath.UdpCoalescing, aead = status.DataPath.Aead },
        relayStreams = status.RelayStreams.Select(r => new
        {
            relay = r.Relay,
            url = r.Url,
            state = r.State,
            transport = r.Transport.Length > 0 ? r.Transport : null,
            error = r.Error.Length > 0 ? r.Error : null,
            droppedFrames = r.DroppedFrames,
        }).ToArray(),
        peers = status.Peers.Select(p => new
        {
            name = p.Name,
            nodeKey = p.NodeKey,
            addresses = p.Addresses.ToArray(),
            online = p.Online,
            path = p.Path,
            endpoint = p.Endpoint.Length > 0 ? p.Endpoint : null,
            relay = p.Relay.Length > 0 ? p.Relay : null,
            relayTransport = p.RelayTransport.Length > 0 ? p.RelayTransport : null,
            technique = p.Technique.Length > 0 ? p.Technique : null,
            latencyMs = p.LatencyMs > 0 ? Math.Round(p.LatencyMs, 2) : (double?)null,
            latestHandshake = p.LatestHandshake == 0 ? null : DateTimeOffset.FromUnixTimeSeconds(p.LatestHandshake).ToString("O"),
            rxBytes = p.RxBytes,
            txBytes = p.TxBytes,
            reason = p.Reason,
            natMapping = p.NatMapping,
        }).ToArray(),
    }, Json) + "\n";
}
