using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>
/// The published l2proxy's command line, as an operator meets it: --check-config on Dante's own
/// example and on a broken file, exit codes, --version, --help of passwd, and durations refused
/// without their unit. Nothing here binds a socket; l2bal's command line is in
/// Balancer/Config/CheckConfigTests.cs.
/// </summary>
public sealed class CheckConfigTests : IDisposable
{
    /// <summary>The feature these tests judge, which Dante and microsocks lack.</summary>
    private const string CommandLine = "l2proxy's command line (--check-config, --version, units on durations)";

    private readonly string _dir = Directory.CreateTempSubdirectory("l2proxy-check-").FullName;

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task L2ProxyCheckConfig_DanteRedundancyExample_IsAcceptedAsIs()
    {
        ProxyUnderTest.SkipUnlessL2Proxy(CommandLine);

        var (code, stdout, stderr) = await RunCheckAsync(DanteExamples.Redundancy);
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Equal("configuration OK", stdout.Trim());
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task L2ProxyCheckConfig_UnsupportedMethod_IsRefusedAtItsPosition()
    {
        ProxyUnderTest.SkipUnlessL2Proxy(CommandLine);

        var (code, _, stderr) = await RunCheckAsync("internal: 198.18.0.10 port = 1080\nsocksmethod: bsdauth\n");
        Assert.Equal(78, code);
        Assert.Contains(":2:", stderr, StringComparison.Ordinal);
        Assert.Contains("bsdauth", stderr, StringComparison.Ordinal);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task L2ProxyFlags_DurationWithoutUnit_Exits64BeforeBinding()
    {
        ProxyUnderTest.SkipUnlessL2Proxy(CommandLine);

        // 192.0.2.1 is no address of this host: were the flags accepted, the bind would fail (exit 1), not listen.
        var (code, _, stderr) = await PublishedProgram.RunAsync(LabBinaries.L2Proxy, "--listen", "192.0.2.1:1080", "--negotiate-timeout", "5");
        Assert.Equal(64, code);
        Assert.Equal("l2proxy: --negotiate-timeout '5': a number alone has no unit: write 5ms or 5s\nl2proxy: see 'l2proxy --help'\n", stderr);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Version_OfL2Proxy_PrintsItsNameAndTheRepositorysVersion()
    {
        ProxyUnderTest.SkipUnlessL2Proxy(CommandLine);

        var (code, stdout, _) = await PublishedProgram.RunAsync(LabBinaries.L2Proxy, "--version");
        Assert.Equal(0, code);
        Assert.StartsWith("l2proxy 0.1.0", stdout, StringComparison.Ordinal);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Help_OfPasswd_ShowsItsUsage()
    {
        ProxyUnderTest.SkipUnlessL2Proxy(CommandLine);

        var (code, stdout, _) = await PublishedProgram.RunAsync(LabBinaries.L2Proxy, "passwd", "--help");
        Assert.Equal(0, code);
        Assert.Contains("Usage:\n  l2proxy passwd", stdout, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private async Task<(int Code, string StdOut, string StdErr)> RunCheckAsync(string text)
    {
        var path = Path.Combine(_dir, "sockd.conf");
        await File.WriteAllTextAsync(path, text);
        return await PublishedProgram.RunAsync(LabBinaries.L2Proxy, "--check-config", path);
    }
}
