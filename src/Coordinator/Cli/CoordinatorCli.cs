using System.CommandLine;
using System.Net;
using Mesh.Coordinator.Hosting;
using Microsoft.Extensions.Logging;

namespace Mesh.Coordinator.Cli;

public static class CoordinatorCli
{
    public static RootCommand Build()
    {
        var root = new RootCommand("Mesh coordinator: registers nodes, hands out addresses and keeps every agent's peer map current.");
        root.Subcommands.Add(BuildServe());
        foreach (var command in AdminCommands.Build()) root.Subcommands.Add(command);
        return root;
    }

    private static Command BuildServe()
    {
        var listen = new Option<IPEndPoint>("--listen")
        {
            Description = "HOST:PORT for the agents' gRPC API: TLS (a self-signed certificate unless --tls-cert is given) beyond loopback, h2c on loopback.",
            DefaultValueFactory = _ => new CoordinatorOptions().Listen,
            CustomParser = result =>
            {
                var text = result.Tokens.Single().Value;
                if (EndpointParser.TryParse(text, out var endpoint, out var error)) return endpoint;
                result.AddError($"--listen: {error}");
                return null;
            },
        };
        var dataDir = new Option<string>("--data-dir")
        {
            Description = "Directory for the database and the admin key.",
            DefaultValueFactory = _ => CoordinatorOptions.DefaultDataDir(),
        };
        var tlsCert = new Option<FileInfo?>("--tls-cert") { Description = "PEM certificate (chain) for TLS (default: a self-signed one made on first start, trusted by agents through its pin)." };
        var tlsKey = new Option<FileInfo?>("--tls-key") { Description = "PEM private key for --tls-cert." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Log debug details." };
        var stunPort = new Option<int>("--stun-port")
        {
            Description = "First UDP port for STUN; the second is the next one up.",
            DefaultValueFactory = _ => CoordinatorOptions.DefaultStunPort,
        };
        var relayPort = new Option<int>("--relay-port")
        {
            Description = "UDP port of the embedded relay; its TCP transport is a WebSocket at /relay on the gRPC port.",
            DefaultValueFactory = _ => CoordinatorOptions.DefaultRelayPort,
        };
        var noRelay = new Option<bool>("--no-relay") { Description = "Run without the embedded relay (agents started with --relay can serve instead)." };
        var publicHost = new Option<string?>("--public-address") { Description = "Host or IP agents reach this coordinator at (default: the address each agent connected to)." };
        var ipv4Prefix = new Option<IPNetwork>("--ipv4-prefix")
        {
            Description = "Prefix mesh IPv4 addresses come from.",
            DefaultValueFactory = _ => new Control.MeshOptions().Ipv4Prefix,
            CustomParser = result =>
            {
                if (IPNetwork.TryParse(result.Tokens.Single().Value, out var prefix)) return prefix;
                result.AddError($"--ipv4-prefix: \"{result.Tokens.Single().Value}\" is not a prefix like 100.64.0.0/10.");
                return default;
            },
        };
        var ephemeralTimeout = new Option<TimeSpan>("--ephemeral-timeout")
        {
            Description = "How long an ephemeral node may stay offline before it is removed (e.g. 2m, 30s).",
            DefaultValueFactory = _ => new Control.MeshOptions().EphemeralTimeout,
            CustomParser = result =>
            {
                if (Durations.TryParse(result.Tokens.Single().Value, out var duration)) return duration;
                result.AddError($"--ephemeral-timeout: \"{result.Tokens.Single().Value}\" is not a duration like 90s, 2m or 1h.");
                return default;
            },
        };
        var postgres = new Option<string?>("--postgres")
        {
            Description = "Run as a replica of a cluster: an Npgsql connection string (\"Host=db;Database=mesh;Username=mesh;Password=...\") for the shared store and Orleans membership (default: $MESH_POSTGRES, which keeps a password out of the process list).",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("MESH_POSTGRES") is { Length: > 0 } fromEnvironment ? fromEnvironment : null,
        };
        var siloPort = new Option<int?>("--silo-port") { Description = $"TCP port the other replicas reach this one's silo at, with mutual TLS (with --postgres; default {CoordinatorOptions.DefaultSiloPort})." };
        var noKeyless = new Option<bool>("--no-keyless-registration") { Description = "Refuse nodes without a pre-auth key (by default they wait, bounded and expiring, for `nodes approve CODE`)." };
        var registrationRate = new Option<double>("--registration-rate")
        {
            Description = "Registrations per second one source address may make (bursts of ten seconds' worth); challenges get ten times as many.",
            DefaultValueFactory = _ => new SourceRateLimits().RegistrationsPerSecond,
        };
        var insecurePlaintext = new Option<bool>("--insecure-plaintext") { Description = "Serve h2c (no TLS) on a non-loopback --listen: only behind a TLS-terminating proxy; keys and netmaps are otherwise in clear." };
        var adminListen = new Option<IPEndPoint?>("--admin-listen")
        {
            Description = "HOST:PORT for admin calls (TLS beyond loopback); default: the unix socket admin.sock in the data directory.",
            CustomParser = result =>
            {
                var text = result.Tokens.Single().Value;
                if (EndpointParser.TryParse(text, out var endpoint, out var error)) return endpoint;
                result.AddError($"--admin-listen: {error}");
                return null;
            },
        };
        var advertise = new Option<IPAddress?>("--advertise-address")
        {
            Description = "IP address the other replicas reach this one at (default: this host's address).",
            CustomParser = result =>
            {
                if (IPAddress.TryParse(result.Tokens.Single().Value, out var address)) return address;
                result.AddError($"--advertise-address: \"{result.Tokens.Single().Value}\" is not an IP address.");
                return null;
            },
        };

        var serve = new Command("serve", "Run the coordinator.")
        {
            listen, dataDir, tlsCert, tlsKey, stunPort, relayPort, noRelay, publicHost, ipv4Prefix, ephemeralTimeout, postgres, siloPort, advertise, insecurePlaintext, adminListen, noKeyless, registrationRate, verbose,
        };
        serve.SetAction(async (parse, cancellationToken) =>
        {
            var options = new CoordinatorOptions
            {
                Listen = parse.GetValue(listen)!,
                DataDir = Path.GetFullPath(parse.GetValue(dataDir)!),
                TlsCertFile = parse.GetValue(tlsCert)?.FullName,
                TlsKeyFile = parse.GetValue(tlsKey)?.FullName,
                StunPort = parse.GetValue(stunPort),
                RelayPort = parse.GetValue(noRelay) ? -1 : parse.GetValue(relayPort),
                PublicHost = parse.GetValue(publicHost),
                Mesh = new Control.MeshOptions
                {
                    Ipv4Prefix = parse.GetValue(ipv4Prefix),
                    EphemeralTimeout = parse.GetValue(ephemeralTimeout),
                    KeylessRegistration = !parse.GetValue(noKeyless),
                },
                RateLimits = new SourceRateLimits { RegistrationsPerSecond = parse.GetValue(registrationRate) },
                Postgres = parse.GetValue(postgres),
                SiloPort = parse.GetValue(siloPort),
                InsecurePlaintext = parse.GetValue(insecurePlaintext),
                AdminListen = parse.GetValue(adminListen),
                AdvertiseAddress = parse.GetValue(advertise),
            };
            if (options.Validate() is { } problem)
            {
                Console.Error.WriteLine($"mesh-coordinator: {problem}");
                return 2;
            }
            var level = parse.GetValue(verbose) ? LogLevel.Debug : LogLevel.Information;
            try
            {
                await using var host = await CoordinatorHost.StartAsync(options, logging => ConsoleLogging.Configure(logging, level), cancellationToken);
                await host.WaitForShutdownAsync(cancellationToken);
                return 0;
            }
            catch (IOException ex)
            {
                Console.Error.WriteLine($"mesh-coordinator: cannot listen on {options.Listen}: {ex.Message}");
                return 1;
            }
            catch (ArgumentException ex)
            {
                Console.Error.WriteLine($"mesh-coordinator: {ex.Message}");
                return 2;
            }
            catch (Store.StoreUnavailableException ex)
            {
                Console.Error.WriteLine($"mesh-coordinator: cannot open the store: {ex.Message}");
                return 1;
            }
        });
        return serve;
    }
}
