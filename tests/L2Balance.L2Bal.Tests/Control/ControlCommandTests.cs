using System.Net;
using L2Balance.Balancer.Control;
using Xunit;

namespace L2Balance.L2Bal.Tests.Control;

/// <summary>The control protocol's request lines, as the daemon answered them before the parser was factored out.</summary>
public sealed class ControlCommandTests
{
    [Theory]
    [InlineData("status", "Status", false)]
    [InlineData("status --json", "Status", true)]
    [InlineData("status  extra --json", "Status", true)]
    [InlineData("drain", "Drain", false)]
    [InlineData("drain now", "Drain", false)]
    [InlineData("undrain", "Undrain", false)]
    [InlineData("drain --migrate", "Drain", false)]
    [InlineData("migrate", "Migrate", false)]
    [InlineData("", "Unknown", false)]
    [InlineData("STATUS", "Unknown", false)]
    [InlineData("status\n--json", "Unknown", false)]
    [InlineData("owner", "Unknown", false)]
    [InlineData("owner 198.18.0.7 extra", "Unknown", false)]
    [InlineData("owner 2001:db8::1", "Owner", false)]
    [InlineData("owner ::ffff:198.18.0.7", "Unknown", false)]
    [InlineData("owner fe80::1%2", "Unknown", false)]
    [InlineData("owner not-an-address", "Unknown", false)]
    [InlineData("owner 198.18.0.7 udp/53 1234 extra", "Unknown", false)]
    [InlineData("owner 198.18.0.7 sctp/53", "Unknown", false)]
    [InlineData("owner 198.18.0.7 udp/53 65536", "Unknown", false)]
    public void Parse_RequestLine_GivesItsVerb(string line, string verb, bool json)
    {
        var command = ControlCommand.Parse(line);

        Assert.Equal(Enum.Parse<ControlVerb>(verb), command.Verb);
        Assert.Equal(json, command.Json);
    }

    [Fact]
    public void Parse_OwnerWithIPv4_CarriesTheAddress()
    {
        var command = ControlCommand.Parse("owner   198.18.0.77");

        Assert.Equal(new ControlCommand(ControlVerb.Owner, Address: IPAddress.Parse("198.18.0.77")), command);
    }

    [Fact]
    public void Parse_OwnerWithPortAndSourcePort_CarriesBoth()
    {
        var command = ControlCommand.Parse("owner 198.18.0.77 udp/53 40000");

        Assert.Equal(new ControlCommand(ControlVerb.Owner, Address: IPAddress.Parse("198.18.0.77"), Port: new("udp", 53), SourcePort: 40000), command);
        Assert.Equal("owner 198.18.0.77 udp/53 40000", command.ToString());
    }

    [Theory]
    [InlineData("status")]
    [InlineData("status --json")]
    [InlineData("owner 198.18.0.77")]
    [InlineData("owner 1")]
    [InlineData("owner 198.18.0.77 udp/53")]
    [InlineData("owner 198.18.0.77 udp/53 40000")]
    [InlineData("drain")]
    [InlineData("drain --migrate")]
    [InlineData("migrate")]
    [InlineData("undrain")]
    public void ToString_AnyCommand_ParsesBackToIt(string line)
    {
        var command = ControlCommand.Parse(line);

        Assert.Equal(command, ControlCommand.Parse(command.ToString()));
    }

    [Fact]
    public void Parse_DrainWithMigrate_CarriesIt()
    {
        Assert.True(ControlCommand.Parse("drain --migrate").Migrate);
        Assert.False(ControlCommand.Parse("drain").Migrate);
        Assert.Equal("drain --migrate", ControlCommand.Parse("drain --migrate").ToString());
    }
}
