using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Config;
using L2Balance.Common.CommandLine;
using Xunit;

namespace L2Balance.L2Bal.Tests.Config;

/// <summary><c>--affinity PROTO/PORT=MODE</c> and the <c>affinity</c> key of the configuration file.</summary>
public sealed class AffinityOptionsTests : IDisposable
{
    private static readonly string[] Required =
        ["run", "--interface", "eth0", "--vip", "198.18.0.10/24", "--node-id", "2", "--node-count", "3", "--key-file", "/etc/l2bal/key",
         "--service", "tcp/1080", "--service", "udp/53", "--service", "tcp/53"];

    private readonly string _path = Path.Combine(Path.GetTempPath(), $"l2bal-affinity-{Guid.NewGuid():N}.conf");

    public void Dispose() => File.Delete(_path);

    private static BalancerCommand Parse(params string[] extra) => BalancerCommandLine.Parse([.. Required, .. extra]);

    [Fact]
    public void Affinity_NotGiven_IsEmptyAndEveryPortSingle()
    {
        var o = Assert.IsType<BalancerCommand.Run>(Parse()).Options;

        Assert.Empty(o.Affinity);
        Assert.Equal(AffinityMode.Single, AffinityRule.ModeOf(o.Affinity, "udp", 53));
    }

    [Fact]
    public void Affinity_EachModeOnAService_IsRead()
    {
        var o = Assert.IsType<BalancerCommand.Run>(Parse("--affinity", "udp/53=none", "--affinity", "tcp/53=network", "--affinity", "tcp/1080=single")).Options;

        Assert.Equal([new("udp", 53, AffinityMode.None), new("tcp", 53, AffinityMode.Network), new("tcp", 1080, AffinityMode.Single)], o.Affinity);
        Assert.Equal("udp/53=none", o.Affinity[0].ToString());
        Assert.Equal([new("udp", 53, AffinityMode.None), new("tcp", 53, AffinityMode.Network)], AffinityRule.Effective(o.Affinity).Reverse());
    }

    [Theory]
    [InlineData("udp/54=none", "--affinity 'udp/54=none': udp/54 is not a service of the VIP; declare it with --service udp/54")]
    [InlineData("udp/53=random", "--affinity 'udp/53=random': use PROTO/PORT=MODE: tcp or udp, a port, and single, none or network (e.g. udp/53=none)")]
    [InlineData("udp/53", "--affinity 'udp/53': use PROTO/PORT=MODE: tcp or udp, a port, and single, none or network (e.g. udp/53=none)")]
    [InlineData("sctp/53=none", "--affinity 'sctp/53=none': use PROTO/PORT=MODE: tcp or udp, a port, and single, none or network (e.g. udp/53=none)")]
    [InlineData("udp/0=none", "--affinity 'udp/0=none': use PROTO/PORT=MODE: tcp or udp, a port, and single, none or network (e.g. udp/53=none)")]
    public void Affinity_BadValue_IsRefusedWithUsageExit(string value, string message)
    {
        var invalid = Assert.IsType<BalancerCommand.Invalid>(Parse("--affinity", value));

        Assert.Equal([message], invalid.Messages);
        Assert.Equal(ExitCodes.Usage, invalid.ExitCode);
    }

    [Fact]
    public void Affinity_SamePortTwice_IsRefused()
    {
        var invalid = Assert.IsType<BalancerCommand.Invalid>(Parse("--affinity", "udp/53=none", "--affinity", "udp/53=network"));

        Assert.Equal(["--affinity 'udp/53=network': udp/53 has an affinity rule already; give one per port"], invalid.Messages);
    }

    [Fact]
    public void Affinity_InConfigFile_IsReadAndItsErrorsExitAsConfigErrors()
    {
        var head = "interface eth0\nvip 198.18.0.10/24\nnode-id 1\nnode-count 3\nkey-file /etc/l2bal/key\nservice udp/53\n";
        File.WriteAllText(_path, head + "affinity udp/53=none\n");
        var o = Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse(["run", "--config", _path])).Options;
        Assert.Equal([new AffinityRule("udp", 53, AffinityMode.None)], o.Affinity);

        File.WriteAllText(_path, head + "affinity tcp/80=none\n");
        var invalid = Assert.IsType<BalancerCommand.Invalid>(BalancerCommandLine.Parse(["run", "--config", _path]));
        Assert.Equal([$"{_path}:7:10: affinity 'tcp/80=none': tcp/80 is not a service of the VIP; declare it with --service tcp/80"], invalid.Messages);
        Assert.Equal(ExitCodes.Config, invalid.ExitCode);
    }

    [Fact]
    public void Reload_AffinityChanged_NeedsRestartAndKeepsTheRunningRules()
    {
        var running = Assert.IsType<BalancerCommand.Run>(Parse("--affinity", "udp/53=none")).Options;
        var read = Assert.IsType<BalancerCommand.Run>(Parse("--affinity", "udp/53=network")).Options;

        var (options, restart) = BalancerReloadPlan.Plan(running, read);

        Assert.Equal(["affinity"], restart);
        Assert.Equal(running.Affinity, options.Affinity);
        Assert.Empty(BalancerReloadPlan.Plan(running, running with { }).NeedRestart);
    }
}
