namespace Mesh.Integration.Tests;

/// <summary>The built programs under test, found from the test binaries' own configuration (Debug or Release).</summary>
public static class Binaries
{
    public static string Agent => Path("MeshAgent", "mesh-agent.dll");
    public static string Coordinator => Path("Coordinator", "mesh-coordinator.dll");
    public static string HostileCoordinator => Path("Mesh.HostileCoordinator", "mesh-hostile-coordinator.dll", "tests");

    public static string Path(string project, string dll, string folder = "src")
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        var configuration = dir.Parent!.Name;
        while (dir is not null && !File.Exists(System.IO.Path.Combine(dir.FullName, "Mesh.sln"))) dir = dir.Parent;
        if (dir is null) throw new InvalidOperationException("Cannot find the repository root (Mesh.sln) above the test binaries.");
        return System.IO.Path.Combine(dir.FullName, folder, project, "bin", configuration, "net10.0", dll);
    }
}
