using Mesh.Traversal.Paths;

namespace Mesh.NatLab.Scenarios;

public sealed record MatrixCell(Profile A, Profile B, Outcome Expected, PairResult Result);

public sealed record MatrixResult(IReadOnlyList<MatrixCell> Cells);

/// <summary>Every unordered pair of profiles (a profile with itself included), each in its own world, in parallel.</summary>
public static class Matrix
{
    public static IEnumerable<(Profile A, Profile B)> Pairs()
    {
        var all = Profiles.All;
        for (var i = 0; i < all.Count; i++)
        {
            for (var j = i; j < all.Count; j++) yield return (all[i], all[j]);
        }
    }

    public static MatrixResult Run(PathOptions options, int seed)
    {
        var pairs = Pairs().ToList();
        var cells = new MatrixCell[pairs.Count];
        Parallel.For(0, pairs.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            var (a, b) = pairs[i];
            cells[i] = new MatrixCell(a, b, PairScenario.Expected(a, b, options.HardNatTechnique), PairScenario.Run(a, b, seed * 1000 + i, options));
        });
        return new MatrixResult(cells);
    }
}
