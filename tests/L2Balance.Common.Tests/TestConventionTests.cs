using System.Text.RegularExpressions;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Common.Tests;

/// <summary>
/// docs/conventions.md §34 and §35 over every test in the repository, read from the sources (so
/// it knows no product): each test is named <c>Subject_Condition_Outcome</c>, and none reports
/// "passed" by returning early from an <c>if</c> where it should skip with a reason.
/// </summary>
public sealed partial class TestConventionTests
{
    [Fact]
    public void TestMethods_OfEveryTestProject_AreNamedByTheConventionAndNeverReturnEarly()
    {
        var root = Repository.Root;
        var tests = Directory.EnumerateFiles(Path.Combine(root, "tests"), "*.cs", SearchOption.AllDirectories)
            .Select(path => Path.GetRelativePath(root, path).Replace('\\', '/'))
            .Where(file => !file.Split('/').Any(part => part is "bin" or "obj"))
            .OrderBy(file => file, StringComparer.Ordinal)
            .SelectMany(file => TestSource.Methods(file, File.ReadAllText(Path.Combine(root, file))))
            .ToList();

        // The scan must see what it checks: this very test, and tests in every test project.
        Assert.Contains(tests, t => t.Name == nameof(TestMethods_OfEveryTestProject_AreNamedByTheConventionAndNeverReturnEarly));
        Assert.All(
            Directory.GetDirectories(Path.Combine(root, "tests"), "*.Tests").Select(Path.GetFileName),
            project => Assert.True(tests.Any(t => t.File.StartsWith($"tests/{project}/", StringComparison.Ordinal)), $"no test method found in tests/{project}"));

        var offenders = tests
            .Where(t => !Convention().IsMatch(t.Name))
            .Select(t => $"{t.File}:{t.Line}: {t.Name}: not Subject_Condition_Outcome in PascalCase segments (docs/conventions.md §34)")
            .Concat(tests.SelectMany(t => t.EarlyReturns.Select(line =>
                $"{t.File}:{line}: {t.Name}: returns early from an if; skip with a reason instead (docs/conventions.md §35)")))
            .ToList();
        Assert.True(offenders.Count == 0, $"{offenders.Count} test methods break the test conventions:\n{string.Join('\n', offenders)}");
    }

    /// <summary>
    /// Subject_Condition_Outcome, each segment PascalCase; the subject may be a failure-matrix id
    /// (<c>M3_SigstopOfL2BalThenSigcont_PeersCoverAndEverySessionSurvives</c>) and a condition may
    /// start with a number (<c>Echo_64MiBBothWays_ChecksumsMatch</c>).
    /// </summary>
    [GeneratedRegex("^(M[0-9]+[a-z]?|[A-Z][A-Za-z0-9]*)_[A-Z0-9][A-Za-z0-9]*_[A-Z][A-Za-z0-9]*$")]
    private static partial Regex Convention();
}
