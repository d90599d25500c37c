using System.Net;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Rules;
using Xunit;

namespace L2Balance.Proxy.Tests.Config;

public class ConfigValidatorTests
{
    private static readonly ProxyOptions Valid = new()
    {
        Internal = [new ListenSpec(IPAddress.Loopback, null, 1080)],
        ClientRules = [new ClientRule(RuleAction.Pass, AddressMatcher.Any, AddressMatcher.Any, RuleLog.None, new RuleSource(1, 0))],
        SocksRules = [new SocksRule(RuleAction.Pass, AddressMatcher.Any, AddressMatcher.Any, null, RuleProtocol.Any, null, null, null, RuleLog.None, new RuleSource(1, 0))],
    };

    public static TheoryData<string, ProxyOptions, string> Cases => new()
    {
        { "no internal", Valid with { Internal = [] }, "no internal address to listen on (internal: or --listen)" },
        { "username without file", Valid with { SocksMethods = [MethodKind.Username] }, "socksmethod username needs users.file or --users" },
        { "no methods", Valid with { SocksMethods = [] }, "no socksmethod: at least one of none, username, gssapi" },
        { "client username", Valid with { ClientMethods = [MethodKind.Username] }, "clientmethod must be 'none'" },
        { "port 0", Valid with { PortRange = new PortRange(0, 10) }, "bad port range 0-10: need 1 <= LO <= HI <= 65535" },
        { "port reversed", Valid with { PortRange = new PortRange(10, 9) }, "bad port range 10-9: need 1 <= LO <= HI <= 65535" },
        { "negative io", Valid with { IoTimeout = TimeSpan.FromSeconds(-1) }, "timeout.io must not be negative" },
        { "zero connect", Valid with { ConnectTimeout = TimeSpan.Zero }, "timeout.connect must be at least 1 second" },
        { "huge negotiate", Valid with { NegotiateTimeout = TimeSpan.FromDays(30) }, "timeout.negotiate is too long (at most 2147483 s)" },
        { "debug", Valid with { Debug = 7 }, "debug level 7 is not 0, 1 or 2" },
        { "max clients", Valid with { MaxClients = 0 }, "max clients must be at least 1" },
        { "per client", Valid with { MaxClientsPerAddress = 0 }, "max clients per address must be at least 1" },
        { "udp", Valid with { MaxUdpAssociations = -1 }, "max UDP associations must not be negative" },
        { "workers", Valid with { Workers = 0 }, "workers must be between 1 and 64" },
        { "too many workers", Valid with { Workers = 65 }, "workers must be between 1 and 64" },
        { "no log", Valid with { LogOutput = [] }, "logoutput has no target" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Validate_EachProblem_GivesItsExactError(string name, ProxyOptions options, string expected)
    {
        var validation = ConfigValidator.Validate(options);
        Assert.True(validation.Errors.Count == 1, name + ": " + string.Join("; ", validation.Errors));
        Assert.Equal(expected, validation.Errors[0].Message);
    }

    [Fact]
    public void Validate_ValidOptions_HaveNoProblems()
    {
        var validation = ConfigValidator.Validate(Valid);
        Assert.Empty(validation.Errors);
        Assert.Empty(validation.Warnings);
        Assert.Empty(ConfigValidator.Validate(Valid with { SocksMethods = [MethodKind.Username], UsersFile = "/u" }).Errors);
    }

    [Fact]
    public void Validate_RuleMethodOutsideTheGlobalList_NamesTheRule()
    {
        var rule = Valid.SocksRules[0] with { Methods = new HashSet<MethodKind> { MethodKind.Username }, Source = new RuleSource(3, 17) };
        var problem = Assert.Single(ConfigValidator.Validate(Valid with { SocksRules = [rule] }).Errors);
        Assert.Equal(new RuleSource(3, 17), problem.Rule);
        Assert.Equal("socks rule #3: socksmethod 'username' is not in the global socksmethod list", problem.Message);
    }

    [Fact]
    public void Validate_OnlyBlockRules_Warns()
    {
        var blockOnly = Valid with { SocksRules = [Valid.SocksRules[0] with { Action = RuleAction.Block }] };
        Assert.Equal(["no client/socks pass rule: every client will be refused"], ConfigValidator.Validate(blockOnly).Warnings);
    }

    [Fact]
    public void Validate_SeveralProblems_AreAllCollected()
    {
        var bad = Valid with { Internal = [], Debug = 9, Workers = 0, MaxClients = 0 };
        Assert.Equal(4, ConfigValidator.Validate(bad).Errors.Count);
    }
}
