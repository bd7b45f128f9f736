using System.CommandLine;

namespace Mesh.Coordinator.Cli;

internal static class CliRunner
{
    /// <summary>Runs the command line; a usage error is one line on stderr and exit code 2, not a page of help.</summary>
    public static Task<int> RunAsync(string program, RootCommand root, string[] args)
    {
        var parse = root.Parse(args);
        if (parse.Errors.Count == 0) return parse.InvokeAsync();
        Console.Error.WriteLine($"{program}: {parse.Errors[0].Message} (see --help)");
        return Task.FromResult(2);
    }
}
