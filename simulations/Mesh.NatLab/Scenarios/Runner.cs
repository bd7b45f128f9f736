using System.Diagnostics;
using Mesh.Traversal.Paths;

namespace Mesh.NatLab.Scenarios;

/// <summary>`natlab [--out FILE] [--no-hard-nat] [--seed N]`: runs the matrix and the fault scenarios and writes the report.</summary>
public static class Runner
{
    public static int Run(string[] args)
    {
        string? output = null;
        var options = new PathOptions();
        var seed = 1;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--out" when i + 1 < args.Length:
                    output = args[++i];
                    break;
                case "--no-hard-nat":
                    options = new PathOptions { HardNatTechnique = false };
                    break;
                case "--seed" when i + 1 < args.Length && int.TryParse(args[i + 1], out var parsed):
                    seed = parsed;
                    i++;
                    break;
                default:
                    Console.Error.WriteLine($"natlab: unknown argument \"{args[i]}\"; usage: natlab [--out FILE|-] [--no-hard-nat] [--seed N]");
                    return 2;
            }
        }
        var clock = Stopwatch.StartNew();
        var matrix = Matrix.Run(options, seed);
        var faults = FaultScenarios.RunAll(seed);
        var report = Report.Render(matrix, faults, options, seed, clock.Elapsed);
        if (output is null or "-") Console.Write(report);
        else File.WriteAllText(output, report);
        var unexpected = matrix.Cells.Count(c => c.Result.Outcome != c.Expected) + faults.Count(f => !f.Passed);
        Console.Error.WriteLine($"natlab: {matrix.Cells.Count} pairs and {faults.Count} fault scenarios in {clock.Elapsed.TotalSeconds:0.0}s; {unexpected} unexpected");
        return unexpected == 0 ? 0 : 1;
    }
}
