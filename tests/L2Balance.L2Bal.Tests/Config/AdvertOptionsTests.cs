using L2Balance.Balancer.Config;
using Xunit;

namespace L2Balance.L2Bal.Tests.Config;

/// <summary>The options of a key change and an upgrade (docs/design.md#key-rollover, #advert-v2).</summary>
public class AdvertOptionsTests
{
    private static readonly string[] Required =
        ["run", "--interface", "eth0", "--vip", "198.18.0.10/24", "--node-id", "2", "--node-count", "3", "--key-file", "/etc/l2bal/new.key"];

    /// <summary>A run of node 2 of 3 with <paramref name="extra"/> (also the node of <see cref="MigrateOptionsTests"/>).</summary>
    internal static BalancerCommand Parse(params string[] extra) => BalancerCommandLine.Parse([.. Required, .. extra]);

    [Fact]
    public void Run_WithoutKeyChangeOrPin_HasNoPreviousKeyAndVersion2()
    {
        var o = Assert.IsType<BalancerCommand.Run>(Parse()).Options;
        Assert.Null(o.PreviousKeyFile);
        Assert.Equal(2, o.AdvertVersion);
    }

    [Fact]
    public void Run_PreviousKeyFileAndVersionPin_AreTaken()
    {
        var o = Assert.IsType<BalancerCommand.Run>(Parse("--previous-key-file", "/etc/l2bal/old.key", "--advert-version", "1")).Options;
        Assert.Equal("/etc/l2bal/old.key", o.PreviousKeyFile);
        Assert.Equal(1, o.AdvertVersion);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("3")]
    [InlineData("two")]
    public void Run_AdvertVersionNotSpoken_IsRefusedNamingTheFlag(string version)
    {
        var invalid = Assert.IsType<BalancerCommand.Invalid>(Parse("--advert-version", version));
        Assert.Contains("--advert-version", string.Join("\n", invalid.Messages), StringComparison.Ordinal);
    }

    [Fact]
    public void Run_Weight_IsTakenAndDefaultsTo100()
    {
        Assert.Equal(100, Assert.IsType<BalancerCommand.Run>(Parse()).Options.Weight);
        Assert.Equal(250, Assert.IsType<BalancerCommand.Run>(Parse("--weight", "250")).Options.Weight);
        Assert.Equal(1, Assert.IsType<BalancerCommand.Run>(Parse("--weight", "1")).Options.Weight);
        Assert.Equal(1000, Assert.IsType<BalancerCommand.Run>(Parse("--weight", "1000")).Options.Weight);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("1001")]
    [InlineData("-5")]
    [InlineData("1.5")]
    [InlineData("heavy")]
    public void Run_WeightOutOfRange_IsRefusedNamingTheFlag(string weight)
    {
        var invalid = Assert.IsType<BalancerCommand.Invalid>(Parse("--weight", weight));
        Assert.Contains("--weight", string.Join("\n", invalid.Messages), StringComparison.Ordinal);
    }

    [Fact]
    public void Run_WeightWithAdvertVersion1_IsRefusedNamingBoth()
    {
        var invalid = Assert.IsType<BalancerCommand.Invalid>(Parse("--weight", "200", "--advert-version", "1"));
        var text = string.Join("\n", invalid.Messages);
        Assert.Contains("--weight 200 needs advert version 2", text, StringComparison.Ordinal);
        Assert.Contains("--advert-version 1", text, StringComparison.Ordinal);
    }
}
