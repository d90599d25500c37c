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
}
