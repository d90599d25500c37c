using L2Balance.Balancer.Config;
using Xunit;

namespace L2Balance.L2Bal.Tests.Config;

/// <summary><c>--control-group</c> (flag and file), resolved when the options are built, and <c>genkey --output/--force</c>.</summary>
public sealed class ControlAndKeyOptionsTests
{
    private static readonly string[] Required =
        ["run", "--interface", "eth0", "--vip", "198.18.0.10/24", "--node-id", "2", "--node-count", "3", "--key-file", "/etc/l2bal/key"];

    [Fact]
    public void Run_WithoutControlGroup_LetsOnlyRootChange() =>
        Assert.Null(Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse(Required)).Options.ControlGroup);

    [Fact]
    public void Run_ControlGroupThatExists_IsResolvedToItsId()
    {
        var options = Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse([.. Required, "--control-group", "root"])).Options;
        Assert.Equal(new ControlGroup("root", 0), options.ControlGroup);
    }

    [Fact]
    public void Run_UnknownControlGroup_IsRefusedNamingIt()
    {
        var invalid = Assert.IsType<BalancerCommand.Invalid>(BalancerCommandLine.Parse([.. Required, "--control-group", "no-such-group-l2bal"]));
        Assert.Equal(["--control-group 'no-such-group-l2bal': no such group on this system; create it (groupadd) or name an existing one"], invalid.Messages);
    }

    [Fact]
    public void ConfigFile_UnknownControlGroup_IsRefusedAtItsPosition()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "interface eth0\nvip 198.18.0.10/24\nnode-id 1\nnode-count 1\nkey-file /k\ncontrol-group  no-such-group-l2bal\n");
            var check = Assert.IsType<BalancerCommand.CheckConfig>(BalancerCommandLine.Parse(["check-config", path]));
            Assert.Null(check.Options);
            Assert.Equal([$"{path}:6:16: control-group 'no-such-group-l2bal': no such group on this system; create it (groupadd) or name an existing one"], check.Errors);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void GenKey_WithOutputAndForce_AreRead()
    {
        Assert.Equal(new BalancerCommand.GenKey(), BalancerCommandLine.Parse(["genkey"]));
        Assert.Equal(new BalancerCommand.GenKey("/etc/l2balance/key", false), BalancerCommandLine.Parse(["genkey", "--output", "/etc/l2balance/key"]));
        Assert.Equal(new BalancerCommand.GenKey("/etc/l2balance/key", true), BalancerCommandLine.Parse(["genkey", "--output", "/etc/l2balance/key", "--force"]));
    }

    [Fact]
    public void GenKey_ForceWithoutOutput_IsAUsageError()
    {
        var invalid = Assert.IsType<BalancerCommand.Invalid>(BalancerCommandLine.Parse(["genkey", "--force"]));
        Assert.Equal(["genkey: --force replaces the file of --output; give --output FILE"], invalid.Messages);
    }
}
