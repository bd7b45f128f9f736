using System.CommandLine;

namespace Mesh.Agent.Cli;

public static class AgentCli
{
    public static RootCommand Build()
    {
        var root = new RootCommand("Mesh agent: WireGuard in user space, joined to a mesh by a coordinator.");
        foreach (var command in MeshCommands.Build()) root.Subcommands.Add(command);
        foreach (var command in KeyCommands.Build()) root.Subcommands.Add(command);
        root.Subcommands.Add(WgCommands.Build());
        return root;
    }
}
