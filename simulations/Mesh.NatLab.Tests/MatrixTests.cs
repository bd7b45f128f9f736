using Mesh.NatLab.Scenarios;
using Mesh.NatLab.Sim;
using Mesh.Traversal.Paths;
using Xunit.Abstractions;

namespace Mesh.NatLab.Tests;

public sealed class MatrixTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Pairs()
    {
        var data = new TheoryData<string, string>();
        foreach (var (a, b) in Matrix.Pairs()) data.Add(a.Name, b.Name);
        return data;
    }

    /// <summary>Direct wherever one side maps endpoint-independently (one hard side through the hard-NAT search), relayed otherwise, never failed.</summary>
    [Theory]
    [MemberData(nameof(Pairs))]
    public void EveryPairGetsItsExpectedPath(string a, string b)
    {
        var (left, right) = (Find(a), Find(b));
        var result = Scheduler.OffContext(() => PairScenario.Run(left, right, 1, new PathOptions()));
        output.WriteLine($"{a} x {b}: {result.Outcome} {result.Technique.Name()} {result.Transport}, first packet {Report.Ms(result.FirstPacket)}, direct {Report.Ms(result.ToDirect)}, lost {result.LostWhileSwitching}");
        Assert.Equal(PairScenario.Expected(left, right, hardNatTechnique: true), result.Outcome);
        Assert.NotEqual(Outcome.Failed, result.Outcome);
        Assert.Equal(0, result.LostWhileSwitching);
        var oneHard = (left == Profiles.Symmetric) != (right == Profiles.Symmetric);
        var other = left == Profiles.Symmetric ? right : left;
        if (oneHard && (other == Profiles.PortRestricted || other == Profiles.Cgnat || other == Profiles.Firewall)) Assert.Equal(Technique.Birthday, result.Technique);
        if (a == Profiles.UdpBlocked.Name || b == Profiles.UdpBlocked.Name) Assert.Equal("tcp relay", result.Transport);
        // For another hard NAT, the mapped port is the only way in (the mapping side sees the peer as peer-reflexive).
        if (left == Profiles.Symmetric && right == Profiles.PortMapping) Assert.Equal(Technique.PortMap, result.Technique);
    }

    /// <summary>Turning the hard-NAT technique off visibly changes the matrix: the hard-versus-port-restricted cell falls back to the relay.</summary>
    [Fact]
    public void WithoutTheHardNatTechniqueAHardNatPairIsRelayed()
    {
        var options = new PathOptions { HardNatTechnique = false };
        var result = Scheduler.OffContext(() => PairScenario.Run(Profiles.Symmetric, Profiles.PortRestricted, 1, options));
        output.WriteLine($"hard-NAT technique off: {result.Outcome}; {result.Reason}");
        Assert.Equal(Outcome.Relayed, result.Outcome);
        Assert.Equal(Outcome.Relayed, PairScenario.Expected(Profiles.Symmetric, Profiles.PortRestricted, hardNatTechnique: false));
        Assert.Contains("hard-NAT technique is off", result.Reason);
    }

    /// <summary>Linux-like NATs (conntrack clashes) with and without opening packets: direct with them, and never failed without.</summary>
    [Fact]
    public void PortRestrictedPairsGoDirectWithOpeningPackets()
    {
        var with = Scheduler.OffContext(() => PairScenario.Run(Profiles.PortRestricted, Profiles.PortRestricted, 1, new PathOptions()));
        var without = Scheduler.OffContext(() => PairScenario.Run(Profiles.PortRestricted, Profiles.PortRestricted, 1, new PathOptions { OpeningTtl = 0 }));
        output.WriteLine($"with opening packets: {with.Outcome}; without: {without.Outcome} ({without.Reason})");
        Assert.Equal(Outcome.Direct, with.Outcome);
        Assert.NotEqual(Outcome.Failed, without.Outcome);
    }

    [Fact]
    public void TheSameSeedGivesTheSameRun()
    {
        var first = Scheduler.OffContext(() => PairScenario.Run(Profiles.Symmetric, Profiles.Cgnat, 42, new PathOptions()));
        var second = Scheduler.OffContext(() => PairScenario.Run(Profiles.Symmetric, Profiles.Cgnat, 42, new PathOptions()));
        Assert.Equal(first, second);
    }

    /// <summary>simulations/RESULTS.md is the command's output: every cell in it shows the outcome the tests expect.</summary>
    [Fact]
    public void ResultsFileMatchesTheExpectedOutcomes()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Mesh.sln"))) dir = dir.Parent;
        var lines = File.ReadAllLines(Path.Combine(dir!.FullName, "simulations", "RESULTS.md"));
        var results = lines.SkipWhile(line => line != "## Every pair").Skip(1).TakeWhile(line => !line.StartsWith("## ", StringComparison.Ordinal)).ToArray();
        foreach (var (a, b) in Matrix.Pairs())
        {
            var row = results.Single(line => line.StartsWith($"| {a.Name} | {b.Name} |", StringComparison.Ordinal));
            var cells = row.Split('|', StringSplitOptions.TrimEntries);
            var expected = PairScenario.Expected(a, b, hardNatTechnique: true).ToString().ToLowerInvariant();
            Assert.Equal(expected, cells[3]);
            Assert.Equal(expected, cells[4]);
        }
        Assert.DoesNotContain(lines, line => line.EndsWith("| FAIL |", StringComparison.Ordinal));
        var twins = lines.SkipWhile(line => line != "## Namespace twins").TakeWhile(line => !line.StartsWith("## Real", StringComparison.Ordinal)).ToArray();
        foreach (var twin in Twins.All) Assert.Contains(twins, line => line.StartsWith($"| {twin.A.Name} | {twin.B.Name} | {twin.Variant} |", StringComparison.Ordinal));
    }

    private static Profile Find(string name) => Profiles.All.Single(p => p.Name == name);
}
