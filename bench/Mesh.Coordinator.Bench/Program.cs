using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using Mesh.Control;
using Mesh.Coordinator.Policy;
using Mesh.Protos.V1;
using Grpc.Net.Client;
using Mesh.Tests.Shared;
using Mesh.Transport;
using Mesh.WireGuard.Keys;

// N simulated agents with real sync streams on loopback against coordinator processes: time to register and
// receive the map, coordinator memory per connected agent, time for one agent's endpoint change to reach all
// its peers, and coordinator CPU per change. Each size runs embedded (one process on SQLite) and, with
// --replicas R, again on R replicas over a PostgreSQL of its own, the agents spread across them, so a change
// sent to one replica is counted as it arrives through all of them. With --policy FILE|generated each run is
// made again under that policy: agents join with keys of the users and tags it names (round robin), a change is
// counted as it reaches the agents that see the changed node, and a policy change is timed until every stream
// has its new map.
var positional = new List<string>();
var replicas = 1;
string? policyArgument = null;
var policyOnly = false;
for (var i = 0; i < args.Length; i++)
{
    if (args[i] == "--replicas" && i + 1 < args.Length) replicas = int.Parse(args[++i], CultureInfo.InvariantCulture);
    else if (args[i] == "--policy" && i + 1 < args.Length) policyArgument = args[++i];
    else if (args[i] == "--policy-only") policyOnly = true;
    else positional.Add(args[i]);
}
var policyText = policyArgument switch
{
    null => null,
    "generated" => GeneratedPolicy.Text(users: 100, tags: 20, rules: 200),
    _ => File.ReadAllText(policyArgument),
};
// The policy change timed: one more rule (the first 200 are the same), or the file set again.
var changedPolicyText = policyArgument == "generated" ? GeneratedPolicy.Text(users: 100, tags: 20, rules: 201) : policyText;
var sizes = (positional.Count > 0 ? positional[0] : "2000,10000").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
var changes = positional.Count > 1 ? int.Parse(positional[1], CultureInfo.InvariantCulture) : 40;
// bench/Mesh.Coordinator.Bench/bin/<configuration>/net10.0 -> src/Coordinator/bin/<configuration>/net10.0
var binaries = new DirectoryInfo(AppContext.BaseDirectory);
var coordinatorDll = Path.Combine(binaries.Parent!.Parent!.Parent!.Parent!.Parent!.FullName, "src", "Coordinator", "bin", binaries.Parent.Name, "net10.0", "mesh-coordinator.dll");

var results = new List<Figures>();
foreach (var n in sizes)
{
    if (policyOnly && policyText is not null)
    {
        results.Add(await RunAsync(n, 1, policyText));
        if (replicas > 1) await RunAsync(n, replicas, policyText);
        continue;
    }
    var embedded = await RunAsync(n, 1, null);
    results.Add(embedded);
    if (policyText is not null) Compare(embedded, await RunAsync(n, 1, policyText));
    if (replicas <= 1) continue;
    var cluster = await RunAsync(n, replicas, null);
    if (policyText is not null) Compare(cluster, await RunAsync(n, replicas, policyText));
    Console.WriteLine($"\n  {replicas} replicas against embedded at N = {n}: map for all {cluster.MappedSeconds / embedded.MappedSeconds:F2}x the time, " +
        $"p99 {cluster.P99Ms:F1} ms against {embedded.P99Ms:F1} ms ({cluster.P99Ms / embedded.P99Ms:F2}x), " +
        $"memory per stream {cluster.KiBPerStream:F1} against {embedded.KiBPerStream:F1} KiB (summed over the replicas)");
}
if (sizes.Length > 1)
{
    var first = results[0];
    var last = results[^1];
    Console.WriteLine($"\nper-change coordinator CPU grew {last.CpuMsPerChange / first.CpuMsPerChange:F1}x for {(double)last.N / first.N:F1}x the agents (linear in the peers told; N squared would be {Math.Pow((double)last.N / first.N, 2):F0}x)");
}
return 0;

static void Compare(Figures without, Figures with) =>
    Console.WriteLine($"\n  with the policy against without at N = {with.N}: maps {with.MappedSeconds:F1} s against {without.MappedSeconds:F1} s, " +
        $"p99 {with.P99Ms:F1} ms against {without.P99Ms:F1} ms, {with.KiBPerStream:F1} against {without.KiBPerStream:F1} KiB per stream, " +
        $"CPU per change {with.CpuMsPerChange:F2} against {without.CpuMsPerChange:F2} ms");

async Task<Figures> RunAsync(int n, int replicaCount, string? policy)
{
    using var postgres = replicaCount > 1 ? PostgresServer.Start() : null;
    var processes = new List<(Process Process, string DataDir)>();
    try
    {
        for (var r = 0; r < replicaCount; r++) processes.Add(await StartCoordinatorAsync(postgres, r));
        var adminKey = File.ReadAllText(Path.Combine(processes[0].DataDir, "admin.key")).Trim();
        // Admin calls go to each replica's admin socket (server.url names it); agents to the URL its status gives.
        var adminChannels = processes.Select(p => GrpcChannels.ForUnixSocket(File.ReadAllText(Path.Combine(p.DataDir, "server.url")).Trim()["unix:".Length..])).ToArray();
        var admin = new Admin.AdminClient(adminChannels[0].CreateCallInvoker().WithBearerToken(adminKey));
        var urls = new string[replicaCount];
        for (var r = 0; r < replicaCount; r++) urls[r] = (await new Admin.AdminClient(adminChannels[r].CreateCallInvoker().WithBearerToken(adminKey)).GetStatusAsync(new GetStatusRequest())).AgentUrl;
        // One HTTP/2 connection per 200 streams, spread over the replicas.
        var channels = Enumerable.Range(0, Math.Max(replicaCount, n / 200)).Select(c => GrpcChannels.ForAddress(new Uri(urls[c % replicaCount]), new HttpConnector(null), Timeout.InfiniteTimeSpan)).ToArray();
        var authKey = (await admin.CreatePreAuthKeyAsync(new CreatePreAuthKeyRequest { Reusable = true })).Secret;
        // Under a policy, agents join as its users and tags in turn: a key per owner.
        var parsed = policy is null ? null : AclPolicy.Parse(policy);
        var owners = parsed is null ? [] : GeneratedPolicy.Owners(parsed);
        var ownerKeys = new string[owners.Count];
        var userIds = new Dictionary<string, long>(StringComparer.Ordinal);
        for (var o = 0; o < owners.Count; o++)
        {
            var (user, tag) = owners[o];
            if (user is not null && !userIds.ContainsKey(user)) userIds[user] = (long)(await admin.CreateUserAsync(new CreateUserRequest { Name = user })).Id;
            var request = new CreatePreAuthKeyRequest { Reusable = true, User = user ?? "" };
            if (tag is not null) request.Tags.Add(tag);
            ownerKeys[o] = (await admin.CreatePreAuthKeyAsync(request)).Secret;
        }
        var baseline = Rss(processes);

        var clock = Stopwatch.StartNew();
        var agents = new Agent[n];
        await Parallel.ForEachAsync(Enumerable.Range(0, n), new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (i, ct) =>
        {
            var key = PrivateKey.Generate();
            var client = new Coordinator.CoordinatorClient(channels[i % channels.Length]);
            var owner = owners.Count > 0 ? owners[i % owners.Count] : default;
            var registration = await Registration.RegisterAsync(client, key, owners.Count > 0 ? ownerKeys[i % owners.Count] : authKey, $"agent{i}", ct);
            agents[i] = new Agent(i, key, registration, channels[i % channels.Length]);
            if (parsed is not null)
            {
                var addresses = registration.Addresses.Select(a => System.Net.IPAddress.Parse(a.Split('/')[0])).ToArray();
                var node = new PolicyNode((long)registration.NodeId, owner.Tag is null ? userIds[owner.User!] : null, owner.Tag is null ? owner.User : null,
                    owner.Tag is null ? [] : [owner.Tag], addresses.First(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork), addresses.FirstOrDefault(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6));
                agents[i].Node = node;
                agents[i].Grants = NodeGrants.Of(parsed, node);
            }
        });
        if (policy is not null) await admin.SetPolicyAsync(new SetPolicyRequest { Text = policy });
        var registered = clock.Elapsed;
        var registeredRss = Rss(processes);

        // Agents come online in waves, as after a coordinator restart, each wave waiting for its maps.
        var stormCpu = CpuTime(processes);
        var stormOwnCpu = Process.GetCurrentProcess().TotalProcessorTime;
        var stormStart = clock.Elapsed;
        foreach (var wave in agents.Chunk(1000))
        {
            await Parallel.ForEachAsync(wave, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (agent, _) => await agent.ConnectAsync());
            await Task.WhenAll(wave.Select(a => a.FirstMap.Task));
        }
        var mapped = clock.Elapsed;
        stormCpu = CpuTime(processes) - stormCpu;
        stormOwnCpu = Process.GetCurrentProcess().TotalProcessorTime - stormOwnCpu;
        // Let the wave of "came online" changes drain before measuring single changes.
        await WaitQuietAsync(agents);
        var connectedRss = Rss(processes);

        var cpuBefore = CpuTime(processes);
        long concernedTotal = 0;
        var toAll = new List<double>();
        var each = new List<double>();
        for (var c = 0; c < changes; c++)
        {
            var sender = agents[Random.Shared.Next(n)];
            var marker = $"198.18.{c / 250}.{c % 250 + 1}:4000";
            // The agents the change concerns: all the others without a policy, those that see the sender with one.
            var concerned = agents.Where(a => a != sender && (parsed is null || NodeGrants.Sees(a.Grants!.Sources, a.Grants.Targets, sender.Grants!.Sources, sender.Grants.Targets))).ToArray();
            if (concerned.Length == 0)
            {
                c--;
                continue;
            }
            var sent = Stopwatch.GetTimestamp();
            foreach (var agent in concerned) agent.Expect(sender.NodeId, marker);
            await sender.UpdateEndpointsAsync(marker);
            var arrivals = await Task.WhenAll(concerned.Select(a => a.Arrival!.Task));
            concernedTotal += concerned.Length;
            toAll.Add(Stopwatch.GetElapsedTime(sent, arrivals.Max()).TotalMilliseconds);
            each.AddRange(arrivals.Select(t => Stopwatch.GetElapsedTime(sent, t).TotalMilliseconds));
        }
        var cpuPerChange = (CpuTime(processes) - cpuBefore).TotalMilliseconds / changes;
        var figures = new Figures(n, mapped.TotalSeconds, Percentile(toAll, 99), (connectedRss - registeredRss) / 1024.0 / n, cpuPerChange);

        // A policy change: timed until every agent whose own grants it changes has its new map (the others learn of
        // those nodes by delta, as of any change).
        double? policyApplied = null;
        TimeSpan policyCpu = default, policyOwnCpu = default;
        var regranted = 0;
        if (policy is not null)
        {
            var changed = AclPolicy.Parse(changedPolicyText!);
            var affected = agents.Where(a => !a.Grants!.SameAs(NodeGrants.Of(changed, a.Node!))).ToArray();
            regranted = affected.Length;
            var before = affected.Select(a => a.FullMaps).ToArray();
            policyCpu = CpuTime(processes);
            policyOwnCpu = Process.GetCurrentProcess().TotalProcessorTime;
            var set = Stopwatch.StartNew();
            await admin.SetPolicyAsync(new SetPolicyRequest { Text = changedPolicyText });
            while (affected.Where((a, i) => a.FullMaps <= before[i]).Any()) await Task.Delay(20);
            policyApplied = set.Elapsed.TotalMilliseconds;
            policyCpu = CpuTime(processes) - policyCpu;
            policyOwnCpu = Process.GetCurrentProcess().TotalProcessorTime - policyOwnCpu;
            await WaitQuietAsync(agents);
        }

        var mode = (replicaCount == 1 ? "embedded (SQLite)" : $"{replicaCount} replicas over PostgreSQL") + (policy is null ? ", no policy" : $", a policy of {parsed!.Rules?.Count} rules over {owners.Count} owners");
        Console.WriteLine($"\nN = {n} agents, {mode}, {channels.Length} HTTP/2 connections, {Environment.ProcessorCount} cores");
        if (policy is not null) Console.WriteLine($"  agents a change concerns, mean     {concernedTotal / (double)changes,8:F0}");
        Console.WriteLine($"  register all                       {registered.TotalSeconds,8:F1} s   ({n / registered.TotalSeconds:N0}/s)");
        Console.WriteLine($"  all streams open with their map    {mapped.TotalSeconds,8:F1} s   (after start; {(mapped - stormStart).TotalSeconds:F1} s of streams opening, in which the coordinators used {stormCpu.TotalSeconds:F1} s of CPU and this load generator {stormOwnCpu.TotalSeconds:F1} s)");
        Console.WriteLine($"  coordinator memory per stream      {figures.KiBPerStream,8:F1} KiB (RSS {connectedRss / 1048576} MiB; {(registeredRss - baseline) / 1024.0 / n:F1} KiB per registered node)");
        Console.WriteLine($"  change to all concerned, p50        {Percentile(toAll, 50),8:F1} ms");
        Console.WriteLine($"  change to all concerned, p99        {figures.P99Ms,8:F1} ms");
        Console.WriteLine($"  change to one peer, p50 / p99      {Percentile(each, 50),8:F1} / {Percentile(each, 99):F1} ms");
        Console.WriteLine($"  coordinator CPU per change         {cpuPerChange,8:F2} ms");
        if (policyApplied is { } applied) Console.WriteLine($"  policy change, all {regranted,5} regranted {applied,8:F0} ms (coordinators' CPU {policyCpu.TotalMilliseconds:F0} ms, this load generator's {policyOwnCpu.TotalMilliseconds:F0} ms)");
        foreach (var agent in agents) agent.Dispose();
        foreach (var channel in channels) channel.Dispose();
        return figures;
    }
    finally
    {
        foreach (var (process, dataDir) in processes)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            process.Dispose();
            Directory.Delete(dataDir, recursive: true);
        }
    }
}

async Task<(Process, string)> StartCoordinatorAsync(PostgresServer? postgres, int replica)
{
    var dataDir = Path.Combine(Path.GetTempPath(), $"mesh-bench-{Guid.NewGuid():N}");
    var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
    List<string> arguments = [coordinatorDll, "serve", "--listen", "127.0.0.1:0", "--registration-rate", "100000", "--stun-port", "0", "--relay-port", "0", "--data-dir", dataDir];
    if (postgres is not null)
    {
        arguments.AddRange(["--postgres", postgres.ConnectionString, "--advertise-address", "127.0.0.1",
            "--silo-port", $"{21111 + replica}"]);
    }
    foreach (var arg in arguments) info.ArgumentList.Add(arg);
    info.Environment["DOTNET_gcServer"] = "0";
    var process = Process.Start(info)!;
    // The coordinator's log, kept for a run that fails: where to look is printed then.
    var logPath = Path.Combine(Path.GetTempPath(), $"mesh-bench-coordinator{replica}.log");
    var log = new StreamWriter(logPath) { AutoFlush = true };
    void Write(string? line)
    {
        if (line is null) return;
        lock (log) log.WriteLine(line);
    }
    process.OutputDataReceived += (_, e) => Write(e.Data);
    process.ErrorDataReceived += (_, e) => Write(e.Data);
    process.BeginOutputReadLine();
    process.BeginErrorReadLine();
    var urlFile = Path.Combine(dataDir, "server.url");
    while (!File.Exists(urlFile))
    {
        if (process.HasExited) throw new InvalidOperationException($"coordinator {replica} exited; its log is {logPath}");
        await Task.Delay(50);
    }
    return (process, dataDir);
}

static async Task WaitQuietAsync(Agent[] agents)
{
    var last = -1L;
    while (true)
    {
        await Task.Delay(500);
        var now = agents.Sum(a => a.Received);
        if (now == last) return;
        last = now;
    }
}

static double Percentile(List<double> values, int percent)
{
    var sorted = values.OrderBy(v => v).ToList();
    return sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(percent / 100.0 * sorted.Count) - 1)];
}

/// <summary>The coordinators' resident memory, summed.</summary>
static long Rss(List<(Process Process, string DataDir)> processes)
{
    long total = 0;
    foreach (var (process, _) in processes)
    {
        foreach (var line in File.ReadLines($"/proc/{process.Id}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) total += long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
    }
    return total;
}

/// <summary>The coordinators' CPU time (user and system), summed.</summary>
static TimeSpan CpuTime(List<(Process Process, string DataDir)> processes)
{
    long ticks = 0;
    foreach (var (process, _) in processes)
    {
        var fields = File.ReadAllText($"/proc/{process.Id}/stat").Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        ticks += long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
    }
    return TimeSpan.FromSeconds(ticks / 100.0);
}

/// <summary>What one run measured, for the comparisons printed at the end.</summary>
sealed record Figures(int N, double MappedSeconds, double P99Ms, double KiBPerStream, double CpuMsPerChange);

/// <summary>One simulated agent: a registered node with a sync stream, noting when an expected change arrives.</summary>
sealed class Agent(int index, PrivateKey key, RegisterResponse registration, GrpcChannel channel) : IDisposable
{
    private AsyncDuplexStreamingCall<SyncRequest, SyncResponse>? _call;
    private Expectation? _expected;
    private long _received;

    private long _fullMaps;

    public ulong NodeId => registration.NodeId;
    public PolicyNode? Node { get; set; }
    public NodeGrants? Grants { get; set; }
    public long FullMaps => Interlocked.Read(ref _fullMaps);
    public TaskCompletionSource FirstMap { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public TaskCompletionSource<long>? Arrival { get; private set; }
    public long Received => Interlocked.Read(ref _received);

    /// <summary>
    /// Sync as a load generator reads it: deltas are parsed, of a map (in parts) only whether a part is its last is
    /// read (decoding N maps of N peers would measure protobuf on this side, not the coordinator).
    /// </summary>
    private static readonly SyncResponse FullMapSeen = new() { Full = new NetMap() };
    private static readonly SyncResponse MapPartSeen = new() { Full = new NetMap { Continued = true } };

    private static readonly Method<SyncRequest, SyncResponse> LightSync = new(MethodType.DuplexStreaming, Coordinator.Descriptor.FullName, "Sync",
        Marshallers.Create<SyncRequest>(r => r.ToByteArray(), SyncRequest.Parser.ParseFrom),
        Marshallers.Create<SyncResponse>(r => r.ToByteArray(), ParseLight));

    // Field 1 of SyncResponse (tag byte 0x0a) is the full map.
    private static SyncResponse ParseLight(byte[] bytes) => bytes.Length > 0 && bytes[0] == 0x0a ? (Continues(bytes) ? MapPartSeen : FullMapSeen) : SyncResponse.Parser.ParseFrom(bytes);

    /// <summary>Whether a map part says more parts follow: its fields are skipped, not parsed, to find NetMap.continued.</summary>
    private static bool Continues(byte[] bytes)
    {
        var input = new CodedInputStream(bytes);
        input.ReadTag();
        var end = input.ReadLength() + (int)input.Position;
        while (input.Position < end)
        {
            var tag = input.ReadTag();
            if (WireFormat.GetTagFieldNumber(tag) == NetMap.ContinuedFieldNumber) return input.ReadBool();
            input.SkipLastField();
        }
        return false;
    }

    public async Task ConnectAsync()
    {
        var hello = await Registration.HelloAsync(new Coordinator.CoordinatorClient(channel), key, registration.SessionToken, 0, Endpoints($"192.0.2.{index % 250 + 1}:{10000 + index}"));
        _call = channel.CreateCallInvoker().WithBearerToken(registration.SessionToken).AsyncDuplexStreamingCall(LightSync, null, new CallOptions());
        await _call.RequestStream.WriteAsync(new SyncRequest { Hello = hello });
        _ = Task.Run(ReadAsync);
    }

    public void Expect(ulong node, string marker)
    {
        Arrival = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _expected, new Expectation(node, marker));
    }

    public Task UpdateEndpointsAsync(string address) => _call!.RequestStream.WriteAsync(new SyncRequest { Endpoints = Endpoints(address) });

    public void Dispose() => _call?.Dispose();

    private void Arrived(ulong node, Endpoints? endpoints, Expectation expected)
    {
        if (node == expected.Node && endpoints is { Candidates.Count: > 0 } && endpoints.Candidates[0].Address == expected.Marker) Arrival?.TrySetResult(Stopwatch.GetTimestamp());
    }

    private sealed record Expectation(ulong Node, string Marker);

    private static Endpoints Endpoints(string address) => new() { Candidates = { new Candidate { Address = address, Kind = CandidateKind.Stun } } };

    private async Task ReadAsync()
    {
        try
        {
            while (await _call!.ResponseStream.MoveNext(CancellationToken.None))
            {
                Interlocked.Increment(ref _received);
                var message = _call.ResponseStream.Current;
                if (message.KindCase == SyncResponse.KindOneofCase.Full && !message.Full.Continued)
                {
                    Interlocked.Increment(ref _fullMaps);
                    FirstMap.TrySetResult();
                }
                if (message.KindCase != SyncResponse.KindOneofCase.Delta) continue;
                if (Volatile.Read(ref _expected) is not { } expected) continue;
                foreach (var peer in message.Delta.PeersChanged) Arrived(peer.NodeId, peer.Endpoints, expected);
                foreach (var presence in message.Delta.Presence) Arrived(presence.NodeId, presence.Endpoints, expected);
            }
        }
        catch (RpcException)
        {
        }
    }
}

/// <summary>
/// The generated policy of the benchmark: users in groups of ten, tags owned by groups, and rules of the shapes
/// policies have (a group to a tag's ports, a tag to a tag, a group to its own devices), spread over them.
/// </summary>
static class GeneratedPolicy
{
    public static string Text(int users, int tags, int rules)
    {
        var random = new Random(24);
        var groups = users / 10;
        var text = new System.Text.StringBuilder("// Generated by scripts/bench-coordinator --policy generated.\n{\n  \"groups\": {\n");
        for (var g = 0; g < groups; g++)
        {
            text.Append($"    \"group:g{g:00}\": [{string.Join(", ", Enumerable.Range(g * 10, 10).Select(u => $"\"u{u:000}@\""))}],\n");
        }
        text.Append("  },\n  \"tagOwners\": {\n");
        for (var t = 0; t < tags; t++) text.Append($"    \"tag:t{t:00}\": [\"group:g{t % groups:00}\"],\n");
        text.Append("  },\n  \"acls\": [\n");
        string[] ports = ["22", "80,443", "5432", "8000-8100", "*"];
        for (var r = 0; r < rules; r++)
        {
            var (src, dst) = (r % 4) switch
            {
                0 or 1 => ($"group:g{random.Next(groups):00}", $"tag:t{random.Next(tags):00}:{ports[random.Next(ports.Length)]}"),
                2 => ($"tag:t{random.Next(tags):00}", $"tag:t{random.Next(tags):00}:{ports[random.Next(ports.Length)]}"),
                _ => ($"group:g{random.Next(groups):00}", "autogroup:self:*"),
            };
            text.Append($"    {{ \"action\": \"accept\", \"src\": [\"{src}\"], \"dst\": [\"{dst}\"] }},\n");
        }
        text.Append("  ],\n}\n");
        return text.ToString();
    }

    /// <summary>Who the benchmark's agents join as: each user the policy's groups name, then each tag it owns (joined with a key of the user "default").</summary>
    public static List<(string? User, string? Tag)> Owners(AclPolicy policy)
    {
        var users = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var rule in policy.Rules ?? [])
        {
            foreach (var selector in rule.Sources.Concat(rule.Destinations.Select(d => d.Target)))
            {
                if (selector.Kind == SelectorKind.User) users.Add(selector.Name!);
                if (selector.Kind == SelectorKind.Group) users.UnionWith(selector.Users!);
            }
        }
        var owners = users.Select(u => ((string?)u, (string?)null)).ToList();
        owners.AddRange(policy.TagOwners.Keys.Order(StringComparer.Ordinal).Select(t => ((string?)null, (string?)t)));
        return owners;
    }
}
