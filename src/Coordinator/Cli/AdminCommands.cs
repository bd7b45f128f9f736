using System.CommandLine;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using Grpc.Core;
using Mesh.Coordinator.Hosting;
using Mesh.Coordinator.Policy;
using Mesh.Protos.V1;
using Mesh.Transport;

namespace Mesh.Coordinator.Cli;

/// <summary>
/// The admin CLI: nodes, pre-auth keys, API keys, relays and status, through the Admin gRPC service.
/// Exit 0 on success; otherwise 1 (the call failed) or 2 (bad usage) with one line on stderr.
/// </summary>
internal static class AdminCommands
{
    private static readonly Option<string?> Server = new("--server") { Description = "Coordinator URL (default: from the data directory's server.url).", Recursive = true };
    private static readonly Option<string?> ApiKey = new("--api-key") { Description = "Admin API key (default: the data directory's admin.key, or $MESH_API_KEY).", Recursive = true };
    private static readonly Option<string> DataDir = new("--data-dir")
    {
        Description = "The coordinator's data directory, to find the server and key on its own machine.",
        DefaultValueFactory = _ => CoordinatorOptions.DefaultDataDir(),
        Recursive = true,
    };
    private static readonly Option<FileInfo?> CaCert = new("--ca-cert") { Description = "PEM certificate to trust for an https server with a private CA.", Recursive = true };
    private static readonly Option<string?> Pin = new("--coordinator-pin")
    {
        Description = "Trust the https server whose certificate has this pin (sha256:..., from `mesh-coordinator status`); default: $MESH_COORDINATOR_PIN.",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("MESH_COORDINATOR_PIN") is { Length: > 0 } pin ? pin : null,
        Recursive = true,
    };
    private static readonly Option<bool> InsecurePlaintext = new("--insecure-plaintext") { Description = "Allow an http:// --server on another host (the API key then crosses the network in clear).", Recursive = true };
    private static readonly Option<bool> Json = new("--json") { Description = "Print JSON for scripts instead of a table.", Recursive = true };

    public static IEnumerable<Command> Build()
    {
        var node = new Argument<string>("node") { Description = "Node id, name or base64 node key." };
        var nodes = new Command("nodes", "List and manage nodes.") { Server, ApiKey, DataDir, CaCert, Pin, InsecurePlaintext, Json };
        nodes.Subcommands.Add(Call("list", "List nodes.", [], (admin, _) => admin.ListNodesAsync(new ListNodesRequest()), PrintNodes));
        nodes.Subcommands.Add(Call("show", "Show one node.", [node], (admin, p) => admin.GetNodeAsync(new NodeRef { Node = p.GetValue(node) }), n => PrintNodes(new ListNodesResponse { Nodes = { n } })));
        var newName = new Argument<string>("new-name");
        nodes.Subcommands.Add(Call("rename", "Rename a node.", [node, newName],
            (admin, p) => admin.RenameNodeAsync(new RenameNodeRequest { Node = p.GetValue(node), NewName = p.GetValue(newName) }), n => PrintNodes(new ListNodesResponse { Nodes = { n } })));
        nodes.Subcommands.Add(Call("pending", "List nodes that asked to join without a key.", [], (admin, _) => admin.ListPendingNodesAsync(new ListPendingNodesRequest()),
            r => Table(["CODE", "HOSTNAME", "NODE KEY", "SINCE", "EXPIRES"],
                r.Nodes.Select(p => new[] { p.Code, p.Hostname, Convert.ToBase64String(p.NodeKey.ToByteArray()), Time(p.Since), Time(p.Expires) }))));
        nodes.Subcommands.Add(Call("approve", "Approve a node: a waiting one by the code its agent printed (or its node key).", [node], (admin, p) => admin.ApproveNodeAsync(new NodeRef { Node = p.GetValue(node) }), n => PrintNodes(new ListNodesResponse { Nodes = { n } })));
        nodes.Subcommands.Add(Call("expire", "Expire a node: it leaves every netmap and must register again.", [node], (admin, p) => admin.ExpireNodeAsync(new NodeRef { Node = p.GetValue(node) }), n => PrintNodes(new ListNodesResponse { Nodes = { n } })));
        nodes.Subcommands.Add(Call("delete", "Delete a node.", [node], (admin, p) => admin.DeleteNodeAsync(new NodeRef { Node = p.GetValue(node) }), _ => Console.WriteLine("deleted")));

        var reusable = new Option<bool>("--reusable") { Description = "Usable for any number of nodes (else once)." };
        var ephemeral = new Option<bool>("--ephemeral") { Description = "Nodes that join with it are removed when they go offline." };
        var expiration = new Option<TimeSpan?>("--expiration")
        {
            Description = "Key lifetime, like 1h or 30d (default: none).",
            CustomParser = result =>
            {
                if (Durations.TryParse(result.Tokens.Single().Value, out var duration)) return duration;
                result.AddError($"--expiration: \"{result.Tokens.Single().Value}\" is not a duration like 90s, 15m, 12h or 30d.");
                return null;
            },
        };
        var tags = new Option<string?>("--tags") { Description = "Comma-separated tags for nodes that join with it." };
        var keyUser = new Option<string?>("--user") { Description = "The user the key and its nodes belong to (default: the user \"default\")." };
        var keyId = new Argument<string>("id");
        var expireNodes = new Option<bool>("--expire-nodes") { Description = "Also expire every node that joined with this key." };
        var keys = new Command("keys", "Pre-auth keys for agents to join with.") { Server, ApiKey, DataDir, CaCert, Pin, InsecurePlaintext, Json };
        keys.Subcommands.Add(Call("create", "Create a pre-auth key; its secret is shown once.", [reusable, ephemeral, expiration, tags, keyUser], (admin, p) => admin.CreatePreAuthKeyAsync(new CreatePreAuthKeyRequest
        {
            User = p.GetValue(keyUser) ?? "",
            Reusable = p.GetValue(reusable),
            Ephemeral = p.GetValue(ephemeral),
            ExpirationSeconds = (long)(p.GetValue(expiration)?.TotalSeconds ?? 0),
            Tags = { (p.GetValue(tags) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
        }), PrintJoin));
        keys.Subcommands.Add(Call("list", "List pre-auth keys.", [], (admin, _) => admin.ListPreAuthKeysAsync(new ListPreAuthKeysRequest()), r => PrintKeys(r.Keys)));
        keys.Subcommands.Add(Call("revoke", "Revoke a pre-auth key.", [keyId, expireNodes], (admin, p) => admin.RevokePreAuthKeyAsync(new RevokePreAuthKeyRequest
        {
            Id = p.GetValue(keyId),
            ExpireNodes = p.GetValue(expireNodes),
        }), k => PrintKeys([k])));

        var userName = new Argument<string>("name");
        var newUserName = new Argument<string>("new-name");
        var users = new Command("users", "Users: who pre-auth keys, and the nodes that join with them, belong to.") { Server, ApiKey, DataDir, CaCert, Pin, InsecurePlaintext, Json };
        users.Subcommands.Add(Call("create", "Create a user.", [userName], (admin, p) => admin.CreateUserAsync(new CreateUserRequest { Name = p.GetValue(userName) }), u => PrintUsers([u])));
        users.Subcommands.Add(Call("list", "List users.", [], (admin, _) => admin.ListUsersAsync(new ListUsersRequest()), r => PrintUsers(r.Users)));
        users.Subcommands.Add(Call("rename", "Rename a user.", [userName, newUserName],
            (admin, p) => admin.RenameUserAsync(new RenameUserRequest { Name = p.GetValue(userName), NewName = p.GetValue(newUserName) }), u => PrintUsers([u])));
        users.Subcommands.Add(Call("delete", "Delete a user that owns no node and no pre-auth key.", [userName],
            (admin, p) => admin.DeleteUserAsync(new UserRef { Name = p.GetValue(userName) }), _ => Console.WriteLine("deleted")));

        var apiKeys = new Command("apikeys", "Admin API keys.") { Server, ApiKey, DataDir, CaCert, Pin, InsecurePlaintext, Json };
        apiKeys.Subcommands.Add(Call("create", "Create an admin API key; its secret is shown once.", [], (admin, _) => admin.CreateApiKeyAsync(new CreateApiKeyRequest()), created => Console.WriteLine(created.Secret)));
        apiKeys.Subcommands.Add(Call("list", "List admin API keys.", [], (admin, _) => admin.ListApiKeysAsync(new ListApiKeysRequest()),
            r => Table(["ID", "CREATED", "REVOKED"], r.Keys.Select(k => new[] { k.Id, Time(k.Created), k.Revoked ? "yes" : "no" }))));
        apiKeys.Subcommands.Add(Call("revoke", "Revoke an admin API key.", [keyId], (admin, p) => admin.RevokeApiKeyAsync(new KeyRef { Id = p.GetValue(keyId) }), k => Console.WriteLine($"revoked {k.Id}")));

        var relays = new Command("relays", "Bounce-node relays.") { Server, ApiKey, DataDir, CaCert, Pin, InsecurePlaintext, Json };
        relays.Subcommands.Add(Call("list", "List relays.", [], (admin, _) => admin.ListRelaysAsync(new ListRelaysRequest()),
            r => Table(["ID", "UDP", "TCP"], r.Relays.Select(x => new[] { x.Id, x.UdpAddress, x.TcpUrl }))));

        var status = Call("status", "Show the coordinator's status.", [], (admin, _) => admin.GetStatusAsync(new GetStatusRequest()), s =>
        {
            Console.WriteLine($"version        {s.Version}");
            Console.WriteLine($"started        {Time(s.Started)}");
            Console.WriteLine($"nodes          {s.NodesTotal} ({s.NodesOnline} online)");
            Console.WriteLine($"serial         {s.Serial}");
            Console.WriteLine($"stun servers   {string.Join(", ", s.StunServers)}");
            Console.WriteLine($"agents join    {s.AgentUrl}");
            Console.WriteLine($"tls pin        {(s.TlsPin.Length > 0 ? s.TlsPin : "- (a certificate the agents trust, or plaintext)")}");
        });
        status.Options.Add(Server);
        status.Options.Add(ApiKey);
        status.Options.Add(DataDir);
        status.Options.Add(CaCert);
        status.Options.Add(Pin);
        status.Options.Add(InsecurePlaintext);
        status.Options.Add(Json);
        var limit = new Option<uint>("--limit") { Description = "How many entries, newest first.", DefaultValueFactory = _ => 100 };
        var audit = new Command("audit", "The audit log of admin actions.") { Server, ApiKey, DataDir, CaCert, Pin, InsecurePlaintext, Json };
        audit.Subcommands.Add(Call("list", "List admin actions, newest first: when, which key, what, on what, from where.", [limit],
            (admin, p) => admin.ListAuditAsync(new ListAuditRequest { Limit = p.GetValue(limit) }),
            r => Table(["WHEN", "WHO", "ACTION", "TARGET", "FROM"], r.Entries.Select(e => new[] { Time(e.At), e.Actor, e.Action, e.Target, e.Source }))));
        var policyFile = new Argument<FileInfo>("file") { Description = "A policy in Tailscale's format: HuJSON, comments and trailing commas allowed." };
        var policy = new Command("policy", "Who may reach whom: groups, tags, hosts, acls and tests in Tailscale's policy format.") { Server, ApiKey, DataDir, CaCert, Pin, InsecurePlaintext, Json };
        policy.Subcommands.Add(Call("set", "Check a policy file, run its tests, and put it in force on every node.", [policyFile],
            (admin, p) => admin.SetPolicyAsync(new SetPolicyRequest { Text = File.ReadAllText(p.GetValue(policyFile)!.FullName) }),
            info => Console.WriteLine($"policy version {info.Version} in force: {info.Rules} rules, {info.Tests} tests passed")));
        policy.Subcommands.Add(Call("get", "Print the policy in force as it was set (its version and author go to stderr).", [], (admin, _) => admin.GetPolicyAsync(new GetPolicyRequest()), info =>
        {
            if (info.Version == 0)
            {
                Console.Error.WriteLine("No policy is set: every node may reach every other.");
                return;
            }
            Console.Error.WriteLine($"policy version {info.Version}, set {Time(info.SetAt)} by {info.Actor}");
            Console.Write(info.Text);
        }));
        var check = new Command("check", "Check a policy file and run its tests here, without a coordinator and without changing anything.") { policyFile };
        check.SetAction(parse =>
        {
            string text;
            try
            {
                text = File.ReadAllText(parse.GetValue(policyFile)!.FullName);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"mesh-coordinator: {ex.Message}");
                return 2;
            }
            var read = AclPolicy.Check(text);
            if (!read.Ok)
            {
                Console.Error.WriteLine($"mesh-coordinator: {read.Problem!.Message}");
                return 1;
            }
            Console.WriteLine($"policy ok: {read.Value!.Rules?.Count.ToString() ?? "no acls (everything allowed),"} rules, {read.Value.Tests.Count} tests passed");
            return 0;
        });
        policy.Subcommands.Add(check);
        return [nodes, users, keys, apiKeys, relays, audit, status, policy];
    }

    private static Command Call<T>(string name, string description, Symbol[] symbols, Func<Admin.AdminClient, ParseResult, AsyncUnaryCall<T>> call, Action<T> print)
        where T : IMessage
    {
        var command = new Command(name, description);
        foreach (var symbol in symbols)
        {
            if (symbol is Argument argument) command.Arguments.Add(argument);
            else if (symbol is Option option) command.Options.Add(option);
        }
        command.SetAction(async (parse, cancellationToken) =>
        {
            string server, key;
            HttpConnector connector;
            try
            {
                (server, key) = Connection(parse);
                connector = new HttpConnector(ProxySettings.FromEnvironment(), Trust(parse));
            }
            catch (Exception ex) when (ex is InvalidOperationException or FormatException or IOException or System.Security.Cryptography.CryptographicException)
            {
                Console.Error.WriteLine($"mesh-coordinator: {ex.Message}");
                return 2;
            }
            using var channel = server.StartsWith(UnixScheme, StringComparison.Ordinal)
                ? GrpcChannels.ForUnixSocket(server[UnixScheme.Length..])
                : GrpcChannels.ForAddress(new Uri(server), connector, Timeout.InfiniteTimeSpan);
            var admin = new Admin.AdminClient(channel.CreateCallInvoker().WithBearerToken(key));
            try
            {
                var invocation = call(admin, parse);
                var result = await invocation.ResponseAsync.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
                if (parse.GetValue(Json)) Console.WriteLine(new JsonFormatter(new JsonFormatter.Settings(formatDefaultValues: true)).Format(result));
                else print(result);
                return 0;
            }
            catch (RpcException ex) when (ServerTrustException.In(ex) is { } refused)
            {
                Console.Error.WriteLine($"mesh-coordinator: {refused.Message}");
                return 1;
            }
            catch (RpcException ex)
            {
                Console.Error.WriteLine($"mesh-coordinator: {ex.StatusCode}: {ex.Status.Detail}");
                return 1;
            }
            catch (TimeoutException)
            {
                Console.Error.WriteLine($"mesh-coordinator: {server} did not answer within 30 s");
                return 1;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"mesh-coordinator: {ex.Message}");
                return 2;
            }
        });
        return command;
    }

    /// <summary>"unix:PATH": the admin socket in a coordinator's data directory, which server.url names by default.</summary>
    private const string UnixScheme = "unix:";

    private static (string Server, string Key) Connection(ParseResult parse)
    {
        var dataDir = parse.GetValue(DataDir)!;
        var server = parse.GetValue(Server) ?? Environment.GetEnvironmentVariable("MESH_SERVER") ?? ReadFile(dataDir, CoordinatorOptions.ServerUrlFile, "--server");
        var key = parse.GetValue(ApiKey) ?? Environment.GetEnvironmentVariable("MESH_API_KEY") ?? ReadFile(dataDir, CoordinatorOptions.AdminKeyFile, "--api-key");
        if (server.StartsWith(UnixScheme, StringComparison.Ordinal)) return (server, key);
        if (!Uri.TryCreate(server, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
        {
            throw new InvalidOperationException($"--server: \"{server}\" is not an https:// URL or unix:PATH.");
        }
        if (PlaintextPolicy.Refusal(uri, parse.GetValue(InsecurePlaintext), "--server") is { } refusal) throw new InvalidOperationException(refusal);
        return (server, key);
    }

    private static ServerTrust Trust(ParseResult parse)
    {
        var pin = parse.GetValue(Pin);
        if (pin is not null && CertificatePin.Check(pin) is { } problem) throw new InvalidOperationException($"--coordinator-pin: {problem}");
        return new ServerTrust(LoadCa(parse.GetValue(CaCert)), pin);
    }

    /// <summary>The key, and the line that joins a node with it: one paste on the node.</summary>
    private static void PrintJoin(CreatePreAuthKeyResponse created)
    {
        Console.WriteLine(created.Secret);
        var pin = created.TlsPin.Length > 0 ? $" --coordinator-pin {created.TlsPin}" : "";
        Console.Error.WriteLine("Join a node with it (as root; the key stays out of the process list):");
        Console.Error.WriteLine($"  MESH_AUTH_KEY={created.Secret} mesh-agent up --coordinator {created.AgentUrl}{pin}");
    }

    private static string ReadFile(string dataDir, string file, string flag)
    {
        var path = Path.Combine(dataDir, file);
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"give {flag}, or --data-dir of a coordinator on this machine ({path}: {ex.Message})");
        }
    }

    private static X509Certificate2? LoadCa(FileInfo? caCert) =>
        caCert is null ? null : X509CertificateLoader.LoadCertificateFromFile(caCert.FullName);

    private static void PrintNodes(ListNodesResponse response) => Table(
        ["ID", "NAME", "USER", "ADDRESSES", "STATE", "ONLINE", "LAST SEEN", "TAGS"],
        response.Nodes.Select(n => new[]
        {
            n.Id.ToString(), n.Name, n.User, string.Join(",", n.Addresses), n.State.ToString().Replace("NodeState", "").ToLowerInvariant(),
            n.Online ? "yes" : "no", Time(n.LastSeen), string.Join(",", n.Tags),
        }));

    private static void PrintKeys(IEnumerable<PreAuthKey> keys) => Table(
        ["ID", "USER", "REUSABLE", "EPHEMERAL", "USED", "REVOKED", "EXPIRES", "TAGS"],
        keys.Select(k => new[] { k.Id, k.User, YesNo(k.Reusable), YesNo(k.Ephemeral), YesNo(k.Used), YesNo(k.Revoked), Time(k.Expiration), string.Join(",", k.Tags) }));

    private static void PrintUsers(IEnumerable<User> users) => Table(["ID", "NAME", "CREATED"], users.Select(u => new[] { u.Id.ToString(), u.Name, Time(u.Created) }));

    private static string YesNo(bool value) => value ? "yes" : "no";

    private static string Time(Google.Protobuf.WellKnownTypes.Timestamp? time) =>
        time is null ? "-" : time.ToDateTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);

    private static void Table(string[] header, IEnumerable<string[]> rows)
    {
        var all = rows.Prepend(header).ToList();
        var widths = header.Select((_, i) => all.Max(r => r[i].Length)).ToArray();
        foreach (var row in all) Console.WriteLine(string.Join("  ", row.Select((cell, i) => cell.PadRight(widths[i]))).TrimEnd());
    }
}
