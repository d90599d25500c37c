using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests;

/// <summary>The l2proxy program itself: --check-config on Dante's own example, and on a broken file.</summary>
public sealed class CheckConfigTests
{
    /// <summary>The sockd.conf of Dante's redundancy documentation, addresses filled in.</summary>
    private const string DanteRedundancyExample = """
        errorlog: syslog
        logoutput: /var/log/sockd.log

        internal: 198.18.0.10 port = 1080
        external: 198.18.0.1 #IP-DANTEEXT2 for second node

        client pass {
                from: 0/0 to: 0/0
                log: error connect disconnect
        }

        socks pass {
                from: 0/0 to: 0/0
                log: error connect disconnect
        }
        """;

    [Fact]
    public async Task DanteRedundancyExample_IsAcceptedAsIs()
    {
        var (code, stdout, stderr) = await RunCheckAsync(DanteRedundancyExample);
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Equal("configuration OK", stdout.Trim());
    }

    [Fact]
    public async Task UnsupportedKeyword_IsRefusedWithItsPosition()
    {
        var (code, _, stderr) = await RunCheckAsync("internal: 198.18.0.10 port = 1080\nsocksmethod: gssapi\n");
        Assert.NotEqual(0, code);
        Assert.Contains(":2:", stderr, StringComparison.Ordinal);
        Assert.Contains("gssapi", stderr, StringComparison.Ordinal);
    }

    private static async Task<(int Code, string StdOut, string StdErr)> RunCheckAsync(string text)
    {
        var path = Path.Combine(Path.GetTempPath(), $"l2proxy-check-{Guid.NewGuid():N}.conf");
        await File.WriteAllTextAsync(path, text);
        try
        {
            using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(LabBinaries.L2Proxy, ["--check-config", path])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            })!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync().WithTimeout();
            return (process.ExitCode, await stdout, await stderr);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
