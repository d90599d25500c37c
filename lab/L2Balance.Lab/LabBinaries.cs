namespace L2Balance.Lab;

/// <summary>Locates the repository, the l2proxy build and the Debian tools the lab uses.</summary>
public static class LabBinaries
{
    private static readonly Lazy<string> Root = new(FindRepoRoot);

    /// <summary>The folder holding L2Balance.sln, found by walking up from the running binary.</summary>
    public static string RepoRoot => Root.Value;

    /// <summary>The l2proxy under test: env L2PROXY, else {repo}/out/l2proxy.</summary>
    /// <exception cref="LabUnavailableException">It has not been built.</exception>
    public static string L2Proxy
    {
        get
        {
            var path = Environment.GetEnvironmentVariable("L2PROXY");
            if (string.IsNullOrEmpty(path))
            {
                path = Path.Combine(RepoRoot, "out", "l2proxy");
            }

            return File.Exists(path)
                ? path
                : throw new LabUnavailableException($"l2proxy not found at {path}: build it: dotnet publish proxy -c Release -o out");
        }
    }

    /// <summary>
    /// Returns the full path of <paramref name="program"/> (a name looked up in PATH and the sbin
    /// folders, or an absolute path); throws naming the Debian package to install when it is missing.
    /// </summary>
    public static string Require(string program, string debianPackage)
    {
        return Find(program) ?? throw new LabUnavailableException(
            $"{program} is missing: apt-get install -y {debianPackage} (or run bash tests/run, which installs it)");
    }

    /// <summary>Like <see cref="Require"/> but returns null when missing.</summary>
    public static string? Find(string program)
    {
        if (Path.IsPathRooted(program))
        {
            return File.Exists(program) ? program : null;
        }

        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]);
        return dirs.Select(d => Path.Combine(d, program)).FirstOrDefault(File.Exists);
    }

    /// <summary>
    /// Python 3 with the python3-socks module: always /usr/bin/python3 (Debian's), never a pyenv
    /// or venv interpreter that lacks the module.
    /// </summary>
    public static string RequirePythonSocks()
    {
        var python = Require("/usr/bin/python3", "python3");
        if (!File.Exists("/usr/lib/python3/dist-packages/socks.py"))
        {
            throw new LabUnavailableException("python3-socks is missing: apt-get install -y python3-socks");
        }

        return python;
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "L2Balance.sln")))
            {
                return dir.FullName;
            }
        }

        throw new LabUnavailableException($"L2Balance.sln not found above {AppContext.BaseDirectory}");
    }
}
