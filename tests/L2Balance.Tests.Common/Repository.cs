namespace L2Balance.Tests.Common;

/// <summary>The checkout the tests run from, for tests that read its documents or sources.</summary>
public static class Repository
{
    private static readonly Lazy<string> RootPath = new(FindRoot);

    /// <summary>The directory holding L2Balance.sln, found by walking up from the test assembly.</summary>
    /// <exception cref="DirectoryNotFoundException">The tests run outside a checkout.</exception>
    public static string Root => RootPath.Value;

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "L2Balance.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException($"no L2Balance.sln above {AppContext.BaseDirectory}: run the tests from a checkout");
    }
}
