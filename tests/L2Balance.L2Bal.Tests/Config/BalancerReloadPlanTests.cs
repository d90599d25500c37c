using L2Balance.Balancer.Config;
using Xunit;

namespace L2Balance.L2Bal.Tests.Config;

/// <summary>SIGHUP changes the health settings of a running node and nothing that shapes the cluster.</summary>
public class BalancerReloadPlanTests
{
    private static readonly string[] Base =
        ["run", "--interface", "eth0", "--vip", "198.18.0.10/24", "--node-id", "1", "--node-count", "3", "--key-file", "/etc/l2bal/key"];

    [Fact]
    public void Plan_HealthSettingsChanged_AppliesThemAndKeepsNothing()
    {
        var running = Options("--health", "socks5://198.18.0.10:1080");
        var read = Options("--health", "tcp://127.0.0.1:1080", "--health-interval", "250ms", "--health-fall", "5", "--health-rise", "2", "--health-timeout", "1s");
        var (options, kept) = BalancerReloadPlan.Plan(running, read);
        Assert.Empty(kept);
        Assert.Equal(read.Health, options.Health);
        Assert.Equal(TimeSpan.FromMilliseconds(250), options.HealthInterval);
        Assert.Equal((5, 2), (options.HealthFall, options.HealthRise));
        Assert.Equal(TimeSpan.FromSeconds(1), options.HealthTimeout);
    }

    [Fact]
    public void Plan_ClusterSettingsChanged_KeepsTheRunningValuesAndNamesThem()
    {
        var running = Options("--health", "socks5://198.18.0.10:1080");
        var read = Options("--health", "none", "--advert-interval", "8ms", "--buckets", "1024", "--health-fall", "4") with { Vip = System.Net.IPAddress.Parse("198.18.0.11") };
        var (options, kept) = BalancerReloadPlan.Plan(running, read);
        Assert.Equal(["vip", "buckets", "advert-interval", "health (turning the probe on or off)"], kept);
        Assert.Equal(running with { HealthFall = 4 }, options);
    }

    [Fact]
    public void Plan_WeightChanged_AppliesItAndKeepsNothing()
    {
        var (options, kept) = BalancerReloadPlan.Plan(Options(), Options("--weight", "300"));
        Assert.Empty(kept);
        Assert.Equal(300, options.Weight);
    }

    [Fact]
    public void Plan_KeyChangeSettingsChanged_NeedARestart()
    {
        var running = Options();
        var read = Options("--previous-key-file", "/etc/l2bal/key.old", "--advert-version", "1");
        var (options, kept) = BalancerReloadPlan.Plan(running, read);
        Assert.Equal(["previous-key-file", "advert-version"], kept);
        Assert.Equal(running, options);
    }

    private static BalancerOptions Options(params string[] more) =>
        Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse([.. Base, .. more])).Options;
}
