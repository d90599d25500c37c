using System.Diagnostics;
using L2Balance.Tests.Common;

namespace L2Balance.Lab.Tests;

/// <summary>
/// Runs a published program (out/l2proxy, out/l2bal) in the test's own namespace, as an operator's
/// shell would, for tests of its command line; nothing it is given binds a socket.
/// </summary>
public static class PublishedProgram
{
    /// <summary>Runs <paramref name="program"/> to its exit (within the default step deadline); its exit code and output.</summary>
    public static async Task<(int Code, string StdOut, string StdErr)> RunAsync(string program, params string[] args)
    {
        using var process = Process.Start(new ProcessStartInfo(program, args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        }) ?? throw new InvalidOperationException($"could not start {program}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WithTimeout();
        }
        catch (TimeoutException)
        {
            // Started above, so ours to stop: a hung program must not outlive its test.
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await stdout, await stderr);
    }
}
