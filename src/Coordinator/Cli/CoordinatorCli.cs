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
        return root;
    }

    private static Command BuildServe()
    {
        var listen = new Option<IPEndPoint>("--listen")
        {
            Description = "HOST:PORT for the gRPC API (h2c, or TLS with --tls-cert).",
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
        var tlsCert = new Option<FileInfo?>("--tls-cert") { Description = "PEM certificate (chain) for TLS." };
        var tlsKey = new Option<FileInfo?>("--tls-key") { Description = "PEM private key for --tls-cert." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Log debug details." };

        var serve = new Command("serve", "Run the coordinator.") { listen, dataDir, tlsCert, tlsKey, verbose };
        serve.SetAction(async (parse, cancellationToken) =>
        {
            var options = new CoordinatorOptions
            {
                Listen = parse.GetValue(listen)!,
                DataDir = Path.GetFullPath(parse.GetValue(dataDir)!),
                TlsCertFile = parse.GetValue(tlsCert)?.FullName,
                TlsKeyFile = parse.GetValue(tlsKey)?.FullName,
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
        });
        return serve;
    }
}
