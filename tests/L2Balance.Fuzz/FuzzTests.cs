using L2Balance.Fuzz.Engine;
using Xunit;

namespace L2Balance.Fuzz;

/// <summary>
/// The suite's share of the fuzzing (issues 13 and 14): 10,000 generated and mutated inputs per
/// target with a fixed seed, so a failure here replays with <c>bash lab/fuzz TARGET --seed 0x1314 --index N</c>.
/// The campaigns of a million inputs per target run outside the suite (lab/fuzz, docs/benchmarks.md).
/// </summary>
public sealed class FuzzTests
{
    public const ulong SuiteSeed = 0x1314;

    private const int SuiteInputs = 10_000;

    public static TheoryData<string> Targets { get; } = [.. FuzzTargets.Names];

    [Theory]
    [MemberData(nameof(Targets))]
    public void Target_TenThousandInputs_NoCrashHangPropertyOrAllocationFailure(string name)
    {
        var target = FuzzTargets.Create(name);
        var report = FuzzRunner.Run(target, new FuzzOptions(SuiteInputs, SuiteSeed, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(2)));
        (target as IDisposable)?.Dispose();

        Assert.True(report.FailureCount == 0, $"{report}\n{string.Join('\n', report.Failures)}");
        Assert.Equal(SuiteInputs, report.Inputs);
        // The inputs must reach the parser's valid path too, or the fuzzing only tests its first checks.
        Assert.True(report.Accepted > 0, $"no input of {name} was accepted: {report}");
    }

    /// <summary>Mutations start from valid messages and files, so that they reach past the first checks
    /// (the metrics and ARP targets also seed refused requests and a tagged frame on purpose).</summary>
    [Theory]
    [MemberData(nameof(Targets))]
    public void Seeds_OfEveryTarget_AreAcceptedByItsParser(string name)
    {
        var target = FuzzTargets.Create(name);
        var refused = target.Seeds.Where(seed =>
        {
            var random = new FuzzRandom(0);
            return !target.Run(seed, ref random).Accepted;
        }).Select(seed => System.Text.Encoding.UTF8.GetString(seed)).ToList();
        (target as IDisposable)?.Dispose();

        int deliberate = name switch { "metrics-request" => 3, "arp-frame" => 1, _ => 0 };
        Assert.True(refused.Count == deliberate, $"{refused.Count} seeds of {name} refused:\n{string.Join("\n---\n", refused)}");
    }
}
