using L2Balance.Proxy.Config;
using Xunit;

namespace L2Balance.Proxy.Tests.Config;

/// <summary>SIGHUP applies what Dante re-reads; what is set up once keeps its running value and is named.</summary>
public class ReloadPlanTests
{
    [Fact]
    public void Plan_RulesLimitsAndTimeoutsChanged_AppliesThemAndKeepsNothing()
    {
        var running = Options("--listen", "127.0.0.1:1080", "--allow", "198.18.0.0/15", "--max-clients", "10", "--connect-timeout", "5s");
        var read = Options("--listen", "127.0.0.1:1080", "--allow", "10.0.0.0/8", "--max-clients", "20", "--connect-timeout", "2s");
        var (options, kept) = ReloadPlan.Plan(running, read);
        Assert.Empty(kept);
        Assert.Equal(read.ClientRules, options.ClientRules);
        Assert.Equal(20, options.MaxClients);
        Assert.Equal(TimeSpan.FromSeconds(2), options.ConnectTimeout);
    }

    [Fact]
    public void Plan_ListenersMetricsAndWorkersChanged_KeepsTheRunningValuesAndNamesThem()
    {
        var running = Options("--listen", "127.0.0.1:1080", "--allow", "198.18.0.0/15", "--max-clients", "10");
        var read = Options("--listen", "127.0.0.1:1081", "--allow", "198.18.0.0/15", "--max-clients", "20", "--metrics", "127.0.0.1:9100", "--workers", "2", "--debug", "1");
        var (options, kept) = ReloadPlan.Plan(running, read);
        Assert.Equal(["internal", "debug", "metrics", "workers"], kept);
        Assert.Equal(running.Internal, options.Internal);
        Assert.Null(options.Metrics);
        Assert.Equal(1, options.Workers);
        Assert.Equal(0, options.Debug);
        Assert.Equal(20, options.MaxClients);
    }

    private static ProxyOptions Options(params string[] args) =>
        Assert.IsType<CommandLineResult.Run>(CommandLine.Parse(args)).Options;
}
