namespace L2Balance.Lab.Cluster;

/// <summary>Locates the l2bal build and names the signals the failure matrix sends.</summary>
public static class ClusterBinaries
{
    /// <summary>The l2bal under test: env L2BAL, else {repo}/out/l2bal.</summary>
    /// <exception cref="LabUnavailableException">It has not been built.</exception>
    public static string L2Bal
    {
        get
        {
            var path = Environment.GetEnvironmentVariable("L2BAL");
            if (string.IsNullOrEmpty(path))
            {
                path = Path.Combine(LabBinaries.RepoRoot, "out", "l2bal");
            }

            return File.Exists(path)
                ? path
                : throw new LabUnavailableException($"l2bal not found at {path}: build it: dotnet publish l2bal -c Release -o out");
        }
    }
}

/// <summary>Linux signal numbers (x86-64 and arm64) for <see cref="LabProcess.Kill"/>.</summary>
public static class LabSignals
{
    public const int Kill = 9;
    public const int Term = 15;
    public const int Cont = 18;
    public const int Stop = 19;
}
