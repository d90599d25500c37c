using System.Net;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Config;

/// <summary><c>--migrate ADDR[:PORT]</c> (docs/design.md#node-addresses).</summary>
public class MigrateOptionsTests
{
    private static BalancerCommand Parse(params string[] extra) => AdvertOptionsTests.Parse(extra);

    [Fact]
    public void Run_WithoutMigrate_IsOff()
    {
        Assert.Null(Assert.IsType<BalancerCommand.Run>(Parse()).Options.Migration);
    }

    [Fact]
    public void Run_OneAddressPerFamily_TakesBothWithTheDefaultPort()
    {
        var m = Assert.IsType<BalancerCommand.Run>(Parse("--migrate", "198.18.0.2", "--migrate", "fdc6:1200::2")).Options.Migration;

        Assert.Equal(new NodeAddresses(IPAddress.Parse("198.18.0.2"), IPAddress.Parse("fdc6:1200::2"), NodeAddresses.DefaultPort), m);
    }

    [Fact]
    public void Run_AddressWithPort_TakesThePort()
    {
        var m = Assert.IsType<BalancerCommand.Run>(Parse("--migrate", "198.18.0.2:2000")).Options.Migration;

        Assert.Equal(2000, m!.Port);
    }

    [Theory]
    [InlineData("198.18.0.10", "is a VIP")]
    [InlineData("eth0", "own address")]
    [InlineData("0.0.0.0", "own address")]
    public void Run_AddressThatCannotServe_IsRefusedNamingTheFlag(string value, string why)
    {
        var invalid = Assert.IsType<BalancerCommand.Invalid>(Parse("--migrate", value));
        var text = string.Join("\n", invalid.Messages);

        Assert.Contains("--migrate", text, StringComparison.Ordinal);
        Assert.Contains(why, text, StringComparison.Ordinal);
    }

    [Fact]
    public void Run_TwoOfAFamilyOrTwoPortsOrVersion1_AreRefused()
    {
        Assert.IsType<BalancerCommand.Invalid>(Parse("--migrate", "198.18.0.2", "--migrate", "198.18.0.3"));
        Assert.IsType<BalancerCommand.Invalid>(Parse("--migrate", "198.18.0.2:1081", "--migrate", "[fdc6:1200::2]:1082"));
        Assert.IsType<BalancerCommand.Invalid>(Parse("--migrate", "198.18.0.2", "--advert-version", "1"));
    }

    [Fact]
    public void Reload_MigrateChanged_NeedsARestart()
    {
        var running = Assert.IsType<BalancerCommand.Run>(Parse("--migrate", "198.18.0.2")).Options;
        var read = Assert.IsType<BalancerCommand.Run>(Parse()).Options;

        var (options, restart) = BalancerReloadPlan.Plan(running, read);

        Assert.Contains("migrate", restart);
        Assert.Equal(running.Migration, options.Migration);
    }
}
