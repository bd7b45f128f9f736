namespace Mesh.NatLab.Scenarios;

/// <summary>One fault scenario's verdict and the figures behind it.</summary>
public sealed record FaultResult(string Name, string Setup, bool Passed, string Expected, string Observed);

public static partial class FaultScenarios
{
    public static IReadOnlyList<FaultResult> RunAll(int seed)
    {
        var scenarios = new Func<int, FaultResult>[] { };
        var results = new FaultResult[scenarios.Length];
        Parallel.For(0, scenarios.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i => results[i] = scenarios[i](seed * 100 + i));
        return results;
    }
}
