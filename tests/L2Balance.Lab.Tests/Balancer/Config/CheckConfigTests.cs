using L2Balance.Lab.Cluster;
using Xunit;

namespace L2Balance.Lab.Tests.Balancer.Config;

/// <summary>
/// The published l2bal's command line, as an operator meets it: check-config and run --config,
/// positions of bad values in file and flags, exit codes, --version, --help of subcommands, and
/// durations refused without their unit. Nothing here binds a socket or starts the daemon.
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

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task L2BalCheckConfig_ValidFileAndKey_PrintsConfigurationOk()
    {
        var (code, stdout, stderr) = await PublishedProgram.RunAsync(ClusterBinaries.L2Bal, "check-config", WriteBalancerConfig(BalancerConfig + $"\nkey-file {WriteKey(32)}\n"));
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Equal("configuration OK\n", stdout);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task L2BalCheckConfig_BadValuesInFileAndFlags_ListsEachAtItsPositionAndExits78()
    {
        var path = WriteBalancerConfig(BalancerConfig.Replace("40ms", "40", StringComparison.Ordinal) + "\nkey-file /k\n  buckets: 2\n");
        var (code, stdout, stderr) = await PublishedProgram.RunAsync(ClusterBinaries.L2Bal, "check-config", path, "--health-timeout", "1");
        Assert.Equal(78, code);
        Assert.Equal("", stdout);
        Assert.Equal(
            $"{path}:6:17: advert-interval '40': a number alone has no unit: write 40ms or 40s\n"
            + $"{path}:8:12: buckets 2 is smaller than node-count 3\n"
            + "--health-timeout '1': a number alone has no unit: write 1ms or 1s\n",
            stderr);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task L2BalCheckConfig_ShortKey_Exits78NamingTheKeyFile()
    {
        var key = WriteKey(8);
        var (code, _, stderr) = await PublishedProgram.RunAsync(ClusterBinaries.L2Bal, "check-config", "--config", WriteBalancerConfig(BalancerConfig), "--key-file", key);
        Assert.Equal(78, code);
        Assert.Contains($"l2bal: key file {key}: the key has 8 bytes; at least 16 are needed", stderr, StringComparison.Ordinal);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task L2BalCheckConfig_AnIpv6VipAlone_IsOkButNotWithADnsProbeOfItsOwnService()
    {
        var path = WriteBalancerConfig(BalancerConfig.Replace("198.18.0.10/24", "fdc6:1200:10::a/64", StringComparison.Ordinal) + $"\nkey-file {WriteKey(32)}\n");
        var (code, stdout, stderr) = await PublishedProgram.RunAsync(ClusterBinaries.L2Bal, "check-config", path);
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Equal("configuration OK\n", stdout);

        (code, _, stderr) = await PublishedProgram.RunAsync(ClusterBinaries.L2Bal, "check-config", path, "--health", "dns://[fdc6:1200:10::a]:53/probe.lab");
        Assert.Equal(78, code);
        Assert.StartsWith("--health dns://[fdc6:1200:10::a]:53/probe.lab: the port-unreachable wake of a dns:// probe of the node's own service is IPv4 only", stderr, StringComparison.Ordinal);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task L2BalRun_BadConfigFile_Exits78BeforeStarting()
    {
        var path = WriteBalancerConfig(BalancerConfig + "\nkey-file /k\npriority 3\n");
        var (code, _, stderr) = await PublishedProgram.RunAsync(ClusterBinaries.L2Bal, "run", "--config", path);
        Assert.Equal(78, code);
        Assert.Equal($"l2bal: {path}:8:1: unknown setting 'priority' (the settings are the flags of 'l2bal run --help', without their dashes)\n", stderr);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task L2BalRun_DurationWithoutUnit_Exits64BeforeStarting()
    {
        var (code, _, stderr) = await PublishedProgram.RunAsync(ClusterBinaries.L2Bal,
            "run", "--interface", "eth0", "--vip", "198.18.0.10/24", "--node-id", "1", "--node-count", "1", "--key-file", "/k", "--advert-interval", "40");
        Assert.Equal(64, code);
        Assert.Equal("l2bal: --advert-interval '40': a number alone has no unit: write 40ms or 40s\nl2bal: see 'l2bal run --help'\n", stderr);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Version_OfL2Bal_PrintsItsNameAndTheRepositorysVersion()
    {
        var (code, stdout, _) = await PublishedProgram.RunAsync(ClusterBinaries.L2Bal, "--version");
        Assert.Equal(0, code);
        Assert.StartsWith("l2bal 0.1.0", stdout, StringComparison.Ordinal);
    }

    [SkippableTheory(typeof(LabUnavailableException))]
    [InlineData("slice")]
    [InlineData("check-config")]
    public async Task Help_OfASubcommand_ShowsItsUsage(string command)
    {
        var (code, stdout, _) = await PublishedProgram.RunAsync(ClusterBinaries.L2Bal, command, "--help");
        Assert.Equal(0, code);
        Assert.Contains($"Usage:\n  l2bal {command}", stdout, StringComparison.Ordinal);
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
}
