using System.Net;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Kernel;
using L2Balance.Common.CommandLine;
using Xunit;

namespace L2Balance.L2Bal.Tests.Config;

/// <summary><c>l2bal run --config FILE</c> and <c>l2bal check-config</c>: the file, and flags mixed with it.</summary>
public sealed class BalancerConfigFileTests : IDisposable
{
    private const string NodeTwo = """
        # node 2 of 3
        interface eth0
        vip: 198.18.0.10/24
        node-id 2
        node-count 3          # the whole cluster
        key-file /etc/l2bal/key
        """;

    private readonly string _path = Path.Combine(Path.GetTempPath(), $"l2bal-{Guid.NewGuid():N}.conf");

    public void Dispose() => File.Delete(_path);

    private string Write(string text)
    {
        File.WriteAllText(_path, text);
        return _path;
    }

    private BalancerCommand.Invalid RunInvalid(string text, params string[] flags) =>
        Assert.IsType<BalancerCommand.Invalid>(BalancerCommandLine.Parse(["run", "--config", Write(text), .. flags]));

    [Fact]
    public void Run_ConfigFile_GivesTheSameOptionsAsFlags()
    {
        var fromFile = Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse(["run", "--config", Write(NodeTwo)])).Options;
        var fromFlags = Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse(
            ["run", "--interface", "eth0", "--vip", "198.18.0.10/24", "--node-id", "2", "--node-count", "3", "--key-file", "/etc/l2bal/key"])).Options;
        Assert.Equal(_path, fromFile.Source);
        Assert.Empty(fromFile.Services);
        Assert.Equal(fromFlags with { Source = _path }, fromFile with { Services = fromFlags.Services, Health = fromFlags.Health });
    }

    [Fact]
    public void Run_ConfigAndFlags_FlagsWin()
    {
        var text = NodeTwo + "\nadvert-interval 50ms\nmac-mode unicast-flood\nservice tcp/1080\nservice udp/1080\n";
        var o = Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse(
            ["run", "--config", Write(text), "--node-id", "3", "--advert-interval", "20ms", "--service", "tcp/8080"])).Options;
        Assert.Equal(3, o.NodeId);
        Assert.Equal(TimeSpan.FromMilliseconds(20), o.AdvertInterval);
        Assert.Equal(MacMode.UnicastFlood, o.MacMode);
        Assert.Equal([new ServiceSpec("tcp", 8080)], o.Services);
        Assert.Equal("eth0", o.Interface);
    }

    [Fact]
    public void Run_FlagOverridesABadFileValue_IsAccepted()
    {
        var o = Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse(
            ["run", "--config", Write(NodeTwo + "\nbuckets many\n"), "--buckets", "512"])).Options;
        Assert.Equal(512, o.Buckets);
    }

    [Fact]
    public void Run_BadValuesInTheFile_AreRefusedAtTheirLineAndColumn()
    {
        var invalid = RunInvalid(NodeTwo + "\nadvert-interval 50\n  health-timeout:  fast\nnode-count 1\n");
        Assert.Equal(
            [
                $"{_path}:7:17: advert-interval '50': a number alone has no unit: write 50ms or 50s",
                $"{_path}:8:20: health-timeout 'fast': not a duration: write a number and its unit (ms, s, m or h), e.g. 40ms or 5s",
                $"{_path}:9:1: node-count is set again (first on line 5); give it once",
            ],
            invalid.Messages);
        Assert.Equal(ExitCodes.Config, invalid.ExitCode);
    }

    [Fact]
    public void Run_RelationBetweenFileValues_IsReportedAtTheFirst()
    {
        Assert.Equal([$"{_path}:4:9: node-id 4 is larger than node-count 3"], RunInvalid(NodeTwo.Replace("node-id 2", "node-id 4", StringComparison.Ordinal)).Messages);
    }

    [Theory]
    [InlineData("priority 3", "1:1: unknown setting 'priority' (the settings are the flags of 'l2bal run --help', without their dashes)")]
    [InlineData("  --buckets 64", "1:3: unknown setting '--buckets' (the settings are the flags of 'l2bal run --help', without their dashes)")]
    [InlineData("buckets", "1:1: buckets needs a value")]
    [InlineData("buckets:   # none", "1:1: buckets needs a value")]
    [InlineData("config /etc/other.conf", "1:1: unknown setting 'config' (the settings are the flags of 'l2bal run --help', without their dashes)")]
    public void Run_MalformedLine_IsRefusedAtItsPosition(string line, string message) =>
        Assert.Contains($"{_path}:{message}", RunInvalid(line + "\n" + NodeTwo).Messages);

    [Fact]
    public void Run_RequiredSettingMissingFromFileAndFlags_NamesTheFile()
    {
        Assert.Equal(
            [$"{_path}: key-file is required (the shared key; make one with 'l2bal genkey --output FILE'): set it in the file or give --key-file"],
            RunInvalid(NodeTwo.Replace("key-file /etc/l2bal/key", "", StringComparison.Ordinal)).Messages);
        Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse(["run", "--config", _path, "--key-file", "/k"]));
    }

    [Fact]
    public void Run_MissingConfigFile_IsAConfigurationError()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"l2bal-{Guid.NewGuid():N}", "none.conf");
        var invalid = Assert.IsType<BalancerCommand.Invalid>(BalancerCommandLine.Parse(["run", "--config", missing]));
        Assert.Equal([$"{missing}: no such configuration file"], invalid.Messages);
        Assert.Equal(ExitCodes.Config, invalid.ExitCode);
    }

    [Fact]
    public void Run_RepeatableServiceInTheFile_KeepsEveryValueAndItsPosition()
    {
        var invalid = RunInvalid(NodeTwo + "\nservice tcp/1080\nservice sctp/9\n");
        Assert.Equal([$"{_path}:8:9: service 'sctp/9': use tcp/PORT or udp/PORT"], invalid.Messages);
    }

    [Fact]
    public void CheckConfig_ValidFile_GivesTheOptionsRunWouldUse()
    {
        var check = Assert.IsType<BalancerCommand.CheckConfig>(BalancerCommandLine.Parse(["check-config", Write(NodeTwo)]));
        Assert.Empty(check.Errors);
        var run = Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse(["run", "--config", _path]));
        Assert.Equal(run.Options with { Services = [], Health = [] }, check.Options! with { Services = [], Health = [] });
        Assert.Equal(check.Options, Assert.IsType<BalancerCommand.CheckConfig>(BalancerCommandLine.Parse(["check-config", "--config", _path])).Options! with { Services = check.Options.Services, Health = check.Options.Health });
    }

    [Fact]
    public void CheckConfig_BadFileAndFlag_ListsEveryError()
    {
        var check = Assert.IsType<BalancerCommand.CheckConfig>(BalancerCommandLine.Parse(
            ["check-config", Write(NodeTwo + "\ndead-after 1\n"), "--health-interval", "100"]));
        Assert.Null(check.Options);
        Assert.Equal(
            [
                $"{_path}:7:12: dead-after '1': give a whole number from 2 to 100",
                "--health-interval '100': a number alone has no unit: write 100ms or 100s",
            ],
            check.Errors);
    }

    [Fact]
    public void CheckConfig_FlagsAlone_AreChecked()
    {
        var check = Assert.IsType<BalancerCommand.CheckConfig>(BalancerCommandLine.Parse(["check-config", "--interface", "eth0"]));
        Assert.Null(check.Options);
        Assert.Contains("--vip is required (the shared IPv4 address, e.g. 198.18.0.10/24, or an IPv6 one, or both)", check.Errors);
    }

    [Fact]
    public void CheckConfig_FileAsArgumentAndAsFlag_IsAUsageError()
    {
        var invalid = Assert.IsType<BalancerCommand.Invalid>(BalancerCommandLine.Parse(["check-config", "a.conf", "--config", "b.conf"]));
        Assert.Equal(["check-config: give the file once, as FILE or as --config FILE (got 'a.conf' and 'b.conf')"], invalid.Messages);
        Assert.Equal(ExitCodes.Usage, invalid.ExitCode);
    }

    [Fact]
    public void Parse_CarriageReturnsAndTabs_AreWhiteSpace()
    {
        var errors = new List<SettingError>();
        var values = BalancerConfigFile.Parse("interface\teth0\r\nvip:198.18.0.10\r\n", "f", errors);
        Assert.Empty(errors);
        Assert.Equal(
            [("interface", "eth0", new ConfigPosition("f", 1, 11)), ("vip", "198.18.0.10", new ConfigPosition("f", 2, 5))],
            values.Select(v => (v.Setting.Name, v.Text, v.Position!.Value)));
    }

    [Fact]
    public void Run_WeightInTheFile_IsTakenAndAFlagWins()
    {
        var o = Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse(["run", "--config", Write(NodeTwo + "\nweight 250\n")])).Options;
        Assert.Equal(250, o.Weight);
        o = Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse(["run", "--config", Write(NodeTwo + "\nweight 250\n"), "--weight", "40"])).Options;
        Assert.Equal(40, o.Weight);
    }
}
