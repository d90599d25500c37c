using L2Balance.Lab.Cluster;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests;

/// <summary>
/// The published programs' command lines, as an operator meets them: l2proxy --check-config on
/// Dante's own example and on a broken file, l2bal check-config and run --config, exit codes,
/// --version, and durations refused without their unit. Nothing here binds a socket.
/// </summary>
public sealed class CheckConfigTests : IDisposable
{
    private const string BalancerConfig = """
        # node 1 of 3
        interface eth0
        vip 198.18.0.10/24
        node-id 1
        node-count 3
        advert-interval 40ms
        """;

    private readonly string _dir = Directory.CreateTempSubdirectory("l2bal-check-").FullName;
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
    public async Task L2ProxyCheckConfig_DanteRedundancyExample_IsAcceptedAsIs()
    {
        var (code, stdout, stderr) = await RunCheckAsync(DanteRedundancyExample);
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Equal("configuration OK", stdout.Trim());
    }

    [Fact]
    public async Task L2ProxyCheckConfig_UnsupportedMethod_IsRefusedAtItsPosition()
    {
        var (code, _, stderr) = await RunCheckAsync("internal: 198.18.0.10 port = 1080\nsocksmethod: gssapi\n");
        Assert.Equal(78, code);
        Assert.Contains(":2:", stderr, StringComparison.Ordinal);
        Assert.Contains("gssapi", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task L2BalCheckConfig_ValidFileAndKey_PrintsConfigurationOk()
    {
        var (code, stdout, stderr) = await RunAsync(ClusterBinaries.L2Bal, "check-config", WriteBalancerConfig(BalancerConfig + $"\nkey-file {WriteKey(32)}\n"));
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Equal("configuration OK\n", stdout);
    }

    [Fact]
    public async Task L2BalCheckConfig_BadValuesInFileAndFlags_ListsEachAtItsPositionAndExits78()
    {
        var path = WriteBalancerConfig(BalancerConfig.Replace("40ms", "40", StringComparison.Ordinal) + "\nkey-file /k\n  buckets: 2\n");
        var (code, stdout, stderr) = await RunAsync(ClusterBinaries.L2Bal, "check-config", path, "--health-timeout", "1");
        Assert.Equal(78, code);
        Assert.Equal("", stdout);
        Assert.Equal(
            $"{path}:6:17: advert-interval '40': a number alone has no unit: write 40ms or 40s\n"
            + $"{path}:8:12: buckets 2 is smaller than node-count 3\n"
            + "--health-timeout '1': a number alone has no unit: write 1ms or 1s\n",
            stderr);
    }

    [Fact]
    public async Task L2BalCheckConfig_ShortKey_Exits78NamingTheKeyFile()
    {
        var key = WriteKey(8);
        var (code, _, stderr) = await RunAsync(ClusterBinaries.L2Bal, "check-config", "--config", WriteBalancerConfig(BalancerConfig), "--key-file", key);
        Assert.Equal(78, code);
        Assert.Contains($"l2bal: key file {key}: the key has 8 bytes; at least 16 are needed", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task L2BalRun_BadConfigFile_Exits78BeforeStarting()
    {
        var path = WriteBalancerConfig(BalancerConfig + "\nkey-file /k\nweight 3\n");
        var (code, _, stderr) = await RunAsync(ClusterBinaries.L2Bal, "run", "--config", path);
        Assert.Equal(78, code);
        Assert.Equal($"l2bal: {path}:8:1: unknown setting 'weight' (the settings are the flags of 'l2bal run --help', without their dashes)\n", stderr);
    }

    [Fact]
    public async Task L2BalRun_DurationWithoutUnit_Exits64BeforeStarting()
    {
        var (code, _, stderr) = await RunAsync(ClusterBinaries.L2Bal,
            "run", "--interface", "eth0", "--vip", "198.18.0.10/24", "--node-id", "1", "--node-count", "1", "--key-file", "/k", "--advert-interval", "40");
        Assert.Equal(64, code);
        Assert.Equal("l2bal: --advert-interval '40': a number alone has no unit: write 40ms or 40s\nl2bal: see 'l2bal run --help'\n", stderr);
    }

    [Fact]
    public async Task L2ProxyFlags_DurationWithoutUnit_Exits64BeforeBinding()
    {
        // 192.0.2.1 is no address of this host: were the flags accepted, the bind would fail (exit 1), not listen.
        var (code, _, stderr) = await RunAsync(LabBinaries.L2Proxy, "--listen", "192.0.2.1:1080", "--negotiate-timeout", "5");
        Assert.Equal(64, code);
        Assert.Equal("l2proxy: --negotiate-timeout '5': a number alone has no unit: write 5ms or 5s\nl2proxy: see 'l2proxy --help'\n", stderr);
    }

    [Theory]
    [InlineData("l2bal")]
    [InlineData("l2proxy")]
    public async Task Version_OfEachProgram_PrintsItsNameAndTheRepositorysVersion(string program)
    {
        var (code, stdout, _) = await RunAsync(program == "l2bal" ? ClusterBinaries.L2Bal : LabBinaries.L2Proxy, "--version");
        Assert.Equal(0, code);
        Assert.StartsWith($"{program} 0.1.0", stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("l2bal", "slice")]
    [InlineData("l2bal", "check-config")]
    [InlineData("l2proxy", "passwd")]
    public async Task Help_OfASubcommand_ShowsItsUsage(string program, string command)
    {
        var (code, stdout, _) = await RunAsync(program == "l2bal" ? ClusterBinaries.L2Bal : LabBinaries.L2Proxy, command, "--help");
        Assert.Equal(0, code);
        Assert.Contains($"Usage:\n  {program} {command}", stdout, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteBalancerConfig(string text)
    {
        var path = Path.Combine(_dir, $"l2bal-{Guid.NewGuid():N}.conf");
        File.WriteAllText(path, text);
        return path;
    }

    private string WriteKey(int bytes)
    {
        var path = Path.Combine(_dir, $"key-{Guid.NewGuid():N}");
        File.WriteAllText(path, Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(bytes / 2)) + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    private async Task<(int Code, string StdOut, string StdErr)> RunCheckAsync(string text)
    {
        var path = Path.Combine(_dir, "sockd.conf");
        await File.WriteAllTextAsync(path, text);
        return await RunAsync(LabBinaries.L2Proxy, "--check-config", path);
    }

    private static async Task<(int Code, string StdOut, string StdErr)> RunAsync(string program, params string[] args)
    {
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(program, args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WithTimeout();
        return (process.ExitCode, await stdout, await stderr);
    }
}
