using System.Diagnostics;
using System.Globalization;
using Xunit;

namespace L2Balance.Tests.Common;

/// <summary>
/// Compiles a small C program that prints <c>name value</c> lines (sizes, offsets, constants from
/// the system headers) and returns them, for tests that check managed layouts against the headers.
/// </summary>
public static class NativeProgram
{
    /// <summary>
    /// Compiles and runs <paramref name="source"/>; its output lines as name → value. Without a C
    /// compiler the calling test is skipped with that reason (it needs [SkippableFact] or [SkippableTheory]).
    /// </summary>
    public static Dictionary<string, long> CompileAndRun(string source, string tempPrefix)
    {
        var compiler = new[] { "clang", "gcc", "cc" }.FirstOrDefault(c => (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':').Any(d => File.Exists(Path.Combine(d, c))))
            ?? throw new SkipException("no C compiler to read the system headers with: apt-get install -y gcc (tests/run installs it)");
        var dir = Directory.CreateTempSubdirectory(tempPrefix);
        try
        {
            var sourceFile = Path.Combine(dir.FullName, "layout.c");
            var binary = Path.Combine(dir.FullName, "layout");
            File.WriteAllText(sourceFile, source);
            Run(compiler, ["-o", binary, sourceFile]);
            return Run(binary, [])
                .Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(line => line.Split(' '))
                .ToDictionary(w => w[0], w => long.Parse(w[1], CultureInfo.InvariantCulture));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static string Run(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(30_000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} did not finish within 30 s");
        }

        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} exited {p.ExitCode}: {stderr.Result}");
        }

        return stdout.Result;
    }
}
