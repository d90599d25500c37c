using System.Net;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Protocol;
using L2Balance.Proxy.Rules;
using Xunit;

namespace L2Balance.Proxy.Tests.Rules;

/// <summary>The destinations never relayed unless a rule names them (issue 13), as pure functions.</summary>
public class ProtectedDestinationsTests
{
    /// <summary>A node with an outer address on a /24, the VIP as a /32, and an IPv6 address.</summary>
    private static readonly LocalAddressSet Node = new(
    [
        (IPAddress.Parse("198.18.2.1"), 24),
        (IPAddress.Parse("198.18.0.10"), 32),
        (IPAddress.Parse("fdc6:1200:2::1"), 64),
        (IPAddress.Loopback, 8),
    ]);

    [Theory]
    [InlineData("127.0.0.1", DestinationClass.Loopback)]
    [InlineData("127.255.1.2", DestinationClass.Loopback)]
    [InlineData("::1", DestinationClass.Loopback)]
    [InlineData("::ffff:127.0.0.1", DestinationClass.Loopback)]
    [InlineData("0.0.0.0", DestinationClass.ThisNetwork)]
    [InlineData("0.1.2.3", DestinationClass.ThisNetwork)]
    [InlineData("::", DestinationClass.ThisNetwork)]
    [InlineData("169.254.169.254", DestinationClass.LinkLocal)]
    [InlineData("fe80::1", DestinationClass.LinkLocal)]
    [InlineData("224.0.0.1", DestinationClass.Multicast)]
    [InlineData("239.255.255.250", DestinationClass.Multicast)]
    [InlineData("ff02::1", DestinationClass.Multicast)]
    [InlineData("255.255.255.255", DestinationClass.Broadcast)]
    [InlineData("198.18.2.255", DestinationClass.Broadcast)]
    [InlineData("::ffff:198.18.2.255", DestinationClass.Broadcast)]
    [InlineData("198.18.2.1", DestinationClass.NodeAddress)]
    [InlineData("198.18.0.10", DestinationClass.NodeAddress)]
    [InlineData("::ffff:198.18.0.10", DestinationClass.NodeAddress)]
    [InlineData("fdc6:1200:2::1", DestinationClass.NodeAddress)]
    [InlineData("198.18.2.2", DestinationClass.Ordinary)]
    [InlineData("198.18.0.255", DestinationClass.Ordinary)]
    [InlineData("fdc6:1200:2::2", DestinationClass.Ordinary)]
    [InlineData("240.0.0.1", DestinationClass.Ordinary)]
    public void Classify_EachAddress_IsInItsClass(string address, DestinationClass expected) =>
        Assert.Equal(expected, ProtectedDestinations.Classify(IPAddress.Parse(address), Node));

    [Fact]
    public void Classify_AddressGoneFromTheNode_IsOrdinaryInTheNextSnapshot()
    {
        var vip = IPAddress.Parse("198.18.0.10");
        var after = new LocalAddressSet([(IPAddress.Parse("198.18.2.1"), 24)]);

        Assert.Equal(DestinationClass.NodeAddress, ProtectedDestinations.Classify(vip, Node));
        Assert.Equal(DestinationClass.Ordinary, ProtectedDestinations.Classify(vip, after));
    }

    [Theory]
    [InlineData("127.0.0.1/32", "127.0.0.1", DestinationClass.Loopback, true)]
    [InlineData("127.0.0.0/8", "127.0.0.1", DestinationClass.Loopback, true)]
    [InlineData("::ffff:127.0.0.0/104", "127.0.0.1", DestinationClass.Loopback, true)]
    [InlineData("0.0.0.0/0", "127.0.0.1", DestinationClass.Loopback, false)]
    [InlineData("0.0.0.0/1", "127.0.0.1", DestinationClass.Loopback, false)]
    [InlineData("127.0.0.2/32", "127.0.0.1", DestinationClass.Loopback, false)]
    [InlineData("::/0", "::1", DestinationClass.Loopback, false)]
    [InlineData("::1/128", "::1", DestinationClass.Loopback, true)]
    [InlineData("198.18.0.0/15", "198.18.0.10", DestinationClass.NodeAddress, false)]
    [InlineData("198.18.0.10/32", "198.18.0.10", DestinationClass.NodeAddress, true)]
    [InlineData("169.254.0.0/16", "169.254.169.254", DestinationClass.LinkLocal, true)]
    [InlineData("224.0.0.0/4", "224.0.0.1", DestinationClass.Multicast, true)]
    [InlineData("198.18.2.0/24", "198.18.2.255", DestinationClass.Broadcast, false)]
    public void Names_ToNetwork_NamesOnlyWithinTheClass(string to, string address, DestinationClass kind, bool expected)
    {
        var parts = to.Split('/');
        var matcher = new AddressMatcher(IPAddress.Parse(parts[0]), int.Parse(parts[1]), null, null);

        Assert.Equal(expected, ProtectedDestinations.Names(matcher, IPAddress.Parse(address), kind));
    }

    [Fact]
    public void Names_ToDomain_NeverNamesAnAddress() =>
        Assert.False(ProtectedDestinations.Names(new AddressMatcher(null, 0, ".example.com", null), IPAddress.Loopback, DestinationClass.Loopback));

    private static SocksRule Pass(int number, string to) =>
        new(RuleAction.Pass, AddressMatcher.Any, Matcher(to), null, RuleProtocol.Any, null, null, null, RuleLog.Error, new RuleSource(number, number));

    private static AddressMatcher Matcher(string cidr)
    {
        var parts = cidr.Split('/');
        return new AddressMatcher(IPAddress.Parse(parts[0]), int.Parse(parts[1]), null, null);
    }

    private static SocksRequestContext Request(string address, string? host = null) =>
        new(new IPEndPoint(IPAddress.Parse("198.18.1.2"), 40000),
            host is null ? SocksEndpoint.FromAddress(IPAddress.Parse(address), 80) : SocksEndpoint.FromHost(host, 80),
            host is null ? null : IPAddress.Parse(address),
            RuleCommand.Connect, RuleProtocol.Tcp, MethodKind.None, null,
            ProtectedDestinations.Classify(IPAddress.Parse(address), Node));

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::ffff:127.0.0.1")]
    [InlineData("198.18.2.1")]
    [InlineData("198.18.0.10")]
    [InlineData("169.254.169.254")]
    [InlineData("255.255.255.255")]
    public void EvaluateSocks_ProtectedDestinationUnderZeroZero_IsBlockedAndSaysWhy(string address)
    {
        var verdict = RuleEvaluator.EvaluateSocks([Pass(1, "0.0.0.0/0"), Pass(2, "198.18.0.0/15")], Request(address));

        Assert.False(verdict.Passed);
        Assert.Null(verdict.Rule);
        Assert.NotEqual(DestinationClass.Ordinary, verdict.Protected);
    }

    [Fact]
    public void EvaluateSocks_RuleNamingLoopbackAfterZeroZero_Passes()
    {
        var verdict = RuleEvaluator.EvaluateSocks([Pass(1, "0.0.0.0/0"), Pass(2, "127.0.0.1/32")], Request("127.0.0.1"));

        Assert.True(verdict.Passed);
        Assert.Equal(new RuleSource(2, 2), verdict.Rule);
    }

    [Fact]
    public void EvaluateSocks_NameResolvingToLoopback_IsBlockedUnderADomainRule()
    {
        var domain = new SocksRule(RuleAction.Pass, AddressMatcher.Any, new AddressMatcher(null, 0, ".example.com", null), null, RuleProtocol.Any,
            null, null, null, RuleLog.Error, new RuleSource(1, 1));

        var verdict = RuleEvaluator.EvaluateSocks([domain], Request("127.0.0.1", host: "evil.example.com"));

        Assert.Equal(DestinationClass.Loopback, verdict.Protected);
        Assert.False(verdict.Passed);
    }

    [Fact]
    public void EvaluateSocks_OrdinaryDestinationUnderZeroZero_Passes() =>
        Assert.True(RuleEvaluator.EvaluateSocks([Pass(1, "0.0.0.0/0")], Request("198.18.2.2")).Passed);
}
