using System.Net;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Protocol;
using L2Balance.Proxy.Rules;
using Xunit;

namespace L2Balance.Proxy.Tests.Rules;

public class RuleEvaluatorTests
{
    private static AddressMatcher Net(string cidr, PortMatcher? port = null)
    {
        string[] parts = cidr.Split('/');
        return new AddressMatcher(IPAddress.Parse(parts[0]), int.Parse(parts[1]), null, port);
    }

    private static AddressMatcher Domain(string domain) => new(null, 0, domain, null);

    private static readonly AddressMatcher All = Net("0.0.0.0/0");

    // Address matching: (matcher, destination address, destination host, expected).
    public static TheoryData<string, AddressMatcher, string?, string?, bool> AddressCases => new()
    {
        { "0/0 v4", All, "192.0.2.1", null, true },
        { "0/0 v6 (Dante: everything)", All, "2001:db8::1", null, true },
        { "0/0 name", All, null, "example.com", true },
        { "0/0 nothing known", All, null, null, true },
        { "::/0 v6", Net("::/0"), "2001:db8::1", null, true },
        { "::/0 not v4", Net("::/0"), "192.0.2.1", null, false },
        { "::/0 not a name", Net("::/0"), null, "example.com", false },
        { "/8 inside", Net("10.0.0.0/8"), "10.255.1.2", null, true },
        { "/8 outside", Net("10.0.0.0/8"), "11.0.0.1", null, false },
        { "/8 not v6", Net("10.0.0.0/8"), "::a00:1", null, false },
        { "/8 mapped v6 as v4", Net("10.0.0.0/8"), "::ffff:10.1.2.3", null, true },
        { "/20 edge in", Net("192.168.16.0/20"), "192.168.31.255", null, true },
        { "/20 edge out", Net("192.168.16.0/20"), "192.168.32.0", null, false },
        { "/32 exact", Net("192.0.2.7/32"), "192.0.2.7", null, true },
        { "/32 other", Net("192.0.2.7/32"), "192.0.2.8", null, false },
        { "v6 /32", Net("2001:db8::/32"), "2001:db8:ffff::1", null, true },
        { "v6 /32 out", Net("2001:db8::/32"), "2001:db9::1", null, false },
        { "v6 /128", Net("2001:db8::1/128"), "2001:db8::1", null, true },
        { "v6 /63 bit", Net("2001:db8:0:2::/63"), "2001:db8:0:3::1", null, true },
        { "v6 /63 bit out", Net("2001:db8:0:2::/63"), "2001:db8:0:4::1", null, false },
        { "network, name unresolved", Net("10.0.0.0/8"), null, "example.com", false },
        { "exact domain", Domain("example.com"), null, "example.com", true },
        { "exact domain case", Domain("example.com"), null, "EXAMPLE.Com", true },
        { "exact domain trailing dot", Domain("example.com"), null, "example.com.", true },
        { "exact domain not sub", Domain("example.com"), null, "www.example.com", false },
        { "suffix domain itself", Domain(".example.com"), null, "example.com", true },
        { "suffix domain sub", Domain(".example.com"), null, "a.b.example.com", true },
        { "suffix domain not lookalike", Domain(".example.com"), null, "badexample.com", false },
        { "domain never matches an address", Domain("example.com"), "192.0.2.1", null, false },
        { "any", AddressMatcher.Any, null, null, true },
    };

    [Theory]
    [MemberData(nameof(AddressCases))]
    public void MatchesAddress_EachMatcherCase_GivesExpectedVerdict(string name, AddressMatcher matcher, string? address, string? host, bool expected)
    {
        Assert.True(expected == RuleEvaluator.MatchesAddress(matcher, address is null ? null : IPAddress.Parse(address), host, 80), name);
    }

    [Theory]
    [InlineData(PortOperator.Eq, 80, 0, 80, true)]
    [InlineData(PortOperator.Eq, 80, 0, 81, false)]
    [InlineData(PortOperator.Neq, 80, 0, 80, false)]
    [InlineData(PortOperator.Neq, 80, 0, 81, true)]
    [InlineData(PortOperator.Ge, 80, 0, 80, true)]
    [InlineData(PortOperator.Ge, 80, 0, 79, false)]
    [InlineData(PortOperator.Le, 80, 0, 80, true)]
    [InlineData(PortOperator.Le, 80, 0, 81, false)]
    [InlineData(PortOperator.Gt, 80, 0, 80, false)]
    [InlineData(PortOperator.Gt, 80, 0, 81, true)]
    [InlineData(PortOperator.Lt, 80, 0, 80, false)]
    [InlineData(PortOperator.Lt, 80, 0, 79, true)]
    [InlineData(PortOperator.Range, 1, 1024, 1, true)]
    [InlineData(PortOperator.Range, 1, 1024, 1024, true)]
    [InlineData(PortOperator.Range, 1, 1024, 1025, false)]
    [InlineData(PortOperator.Range, 10, 20, 9, false)]
    public void MatchesPort_EachOperator_GivesExpectedVerdict(PortOperator op, int port, int high, int actual, bool expected)
    {
        Assert.Equal(expected, RuleEvaluator.MatchesPort(new PortMatcher(op, (ushort)port, (ushort)high), actual));
        var matcher = All with { Port = new PortMatcher(op, (ushort)port, (ushort)high) };
        Assert.Equal(expected, RuleEvaluator.MatchesAddress(matcher, IPAddress.Loopback, null, actual));
    }

    private static ClientRule Client(RuleAction action, AddressMatcher from, AddressMatcher to, int number) =>
        new(action, from, to, RuleLog.Connect, new RuleSource(number, number * 10));

    [Fact]
    public void EvaluateClient_SeveralMatchingRules_FirstWinsAndNoMatchBlocks()
    {
        ClientRule[] rules =
        [
            Client(RuleAction.Block, Net("10.0.0.66/32"), All, 1),
            Client(RuleAction.Pass, Net("10.0.0.0/8"), All, 2),
            Client(RuleAction.Pass, Net("192.0.2.0/24"), Net("198.18.0.10/32", new PortMatcher(PortOperator.Eq, 1080)), 3),
        ];
        var local = new IPEndPoint(IPAddress.Parse("198.18.0.10"), 1080);

        Assert.Equal(new RuleVerdict(RuleAction.Block, RuleLog.Connect, new RuleSource(1, 10), null),
            RuleEvaluator.EvaluateClient(rules, new IPEndPoint(IPAddress.Parse("10.0.0.66"), 5000), local));
        Assert.Equal(new RuleSource(2, 20), RuleEvaluator.EvaluateClient(rules, new IPEndPoint(IPAddress.Parse("10.0.0.67"), 5000), local).Rule);
        Assert.True(RuleEvaluator.EvaluateClient(rules, new IPEndPoint(IPAddress.Parse("::ffff:10.9.9.9"), 5000), local).Passed);
        Assert.Equal(new RuleSource(3, 30), RuleEvaluator.EvaluateClient(rules, new IPEndPoint(IPAddress.Parse("192.0.2.5"), 5000), local).Rule);

        var otherPort = RuleEvaluator.EvaluateClient(rules, new IPEndPoint(IPAddress.Parse("192.0.2.5"), 5000), new IPEndPoint(local.Address, 1081));
        Assert.Equal(new RuleVerdict(RuleAction.Block, RuleLog.None, null, null), otherPort);
        Assert.False(RuleEvaluator.EvaluateClient([], new IPEndPoint(IPAddress.Loopback, 1), local).Passed);
    }

    [Fact]
    public void EvaluateClient_FromPortMatcher_ComparesTheClientPort()
    {
        ClientRule[] rules = [Client(RuleAction.Pass, All with { Port = new PortMatcher(PortOperator.Ge, 1024) }, All, 1)];
        var local = new IPEndPoint(IPAddress.Loopback, 1080);
        Assert.True(RuleEvaluator.EvaluateClient(rules, new IPEndPoint(IPAddress.Loopback, 40000), local).Passed);
        Assert.False(RuleEvaluator.EvaluateClient(rules, new IPEndPoint(IPAddress.Loopback, 1023), local).Passed);
    }

    private static SocksRule Socks(
        int number,
        RuleAction action = RuleAction.Pass,
        AddressMatcher? from = null,
        AddressMatcher? to = null,
        RuleCommand[]? commands = null,
        RuleProtocol protocols = RuleProtocol.Any,
        MethodKind[]? methods = null,
        string[]? users = null,
        PortRange? udp = null) =>
        new(action, from ?? All, to ?? All, commands?.ToHashSet(), protocols, methods?.ToHashSet(),
            users?.ToHashSet(StringComparer.Ordinal), udp, RuleLog.Error, new RuleSource(number, number));

    private static SocksRequestContext Request(
        string client = "10.0.0.1",
        string? address = "192.0.2.1",
        string? host = null,
        ushort port = 443,
        string? resolved = null,
        RuleCommand command = RuleCommand.Connect,
        RuleProtocol protocol = RuleProtocol.Tcp,
        MethodKind method = MethodKind.None,
        string? user = null) =>
        new(new IPEndPoint(IPAddress.Parse(client), 50000),
            host is not null ? SocksEndpoint.FromHost(host, port) : SocksEndpoint.FromAddress(IPAddress.Parse(address!), port),
            resolved is null ? null : IPAddress.Parse(resolved),
            command, protocol, method, user);

    public static TheoryData<string, SocksRule, SocksRequestContext, bool> SocksCases => new()
    {
        { "everything", Socks(1), Request(), true },
        { "from matches", Socks(1, from: Net("10.0.0.0/24")), Request(), true },
        { "from does not match", Socks(1, from: Net("10.0.1.0/24")), Request(), false },
        { "from mapped client", Socks(1, from: Net("10.0.0.0/24")), Request(client: "::ffff:10.0.0.9"), true },
        { "from v6 client", Socks(1, from: Net("2001:db8::/32")), Request(client: "2001:db8::5"), true },
        { "to address", Socks(1, to: Net("192.0.2.0/24")), Request(), true },
        { "to address miss", Socks(1, to: Net("198.51.100.0/24")), Request(), false },
        { "to port", Socks(1, to: All with { Port = new PortMatcher(PortOperator.Eq, 443) }), Request(), true },
        { "to port miss", Socks(1, to: All with { Port = new PortMatcher(PortOperator.Eq, 80) }), Request(), false },
        { "to network, name resolved inside", Socks(1, to: Net("192.0.2.0/24")), Request(host: "example.com", resolved: "192.0.2.9"), true },
        { "to network, name resolved outside", Socks(1, to: Net("192.0.2.0/24")), Request(host: "example.com", resolved: "203.0.113.1"), false },
        { "to network, name unresolved", Socks(1, to: Net("192.0.2.0/24")), Request(host: "example.com"), false },
        { "to 0/0, name unresolved", Socks(1, to: All), Request(host: "example.com"), true },
        { "to domain", Socks(1, to: Domain(".example.com")), Request(host: "www.Example.com"), true },
        { "to domain, address request", Socks(1, to: Domain(".example.com")), Request(), false },
        { "to domain ignores resolved", Socks(1, to: Domain("example.com")), Request(host: "other.org", resolved: "192.0.2.1"), false },
        { "command in set", Socks(1, commands: [RuleCommand.Connect, RuleCommand.Bind]), Request(), true },
        { "command not in set", Socks(1, commands: [RuleCommand.UdpAssociate]), Request(), false },
        { "udp reply", Socks(1, commands: [RuleCommand.UdpReply]), Request(command: RuleCommand.UdpReply, protocol: RuleProtocol.Udp), true },
        { "protocol tcp only, udp request", Socks(1, protocols: RuleProtocol.Tcp), Request(protocol: RuleProtocol.Udp), false },
        { "protocol udp", Socks(1, protocols: RuleProtocol.Udp), Request(protocol: RuleProtocol.Udp), true },
        { "method username required", Socks(1, methods: [MethodKind.Username]), Request(), false },
        { "method username given", Socks(1, methods: [MethodKind.Username]), Request(method: MethodKind.Username, user: "alice"), true },
        { "user listed", Socks(1, users: ["alice", "bob"]), Request(method: MethodKind.Username, user: "bob"), true },
        { "user not listed", Socks(1, users: ["alice"]), Request(method: MethodKind.Username, user: "mallory"), false },
        { "user case-sensitive", Socks(1, users: ["alice"]), Request(method: MethodKind.Username, user: "Alice"), false },
        { "user required, none", Socks(1, users: ["alice"]), Request(), false },
    };

    [Theory]
    [MemberData(nameof(SocksCases))]
    public void EvaluateSocks_EachRuleCase_GivesExpectedVerdict(string name, SocksRule rule, SocksRequestContext request, bool expected)
    {
        var verdict = RuleEvaluator.EvaluateSocks([rule], request);
        Assert.True(expected == verdict.Passed, name);
        Assert.Equal(expected ? rule.Source : null, verdict.Rule);
    }

    [Fact]
    public void EvaluateSocks_SeveralMatchingRules_FirstWinsWithItsPortRange()
    {
        SocksRule[] rules =
        [
            Socks(1, RuleAction.Block, to: Domain(".blocked.example")),
            Socks(2, to: Net("192.0.2.0/24"), commands: [RuleCommand.UdpAssociate], udp: new PortRange(40000, 40099)),
            Socks(3, RuleAction.Block, to: Net("192.0.2.0/24")),
            Socks(4),
        ];
        var blocked = RuleEvaluator.EvaluateSocks(rules, Request(host: "x.blocked.example", resolved: "192.0.2.1"));
        Assert.Equal(new RuleVerdict(RuleAction.Block, RuleLog.Error, new RuleSource(1, 1), null), blocked);

        var udp = RuleEvaluator.EvaluateSocks(rules, Request(command: RuleCommand.UdpAssociate, protocol: RuleProtocol.Udp));
        Assert.Equal(new RuleVerdict(RuleAction.Pass, RuleLog.Error, new RuleSource(2, 2), new PortRange(40000, 40099)), udp);

        Assert.Equal(new RuleSource(3, 3), RuleEvaluator.EvaluateSocks(rules, Request()).Rule);
        Assert.Equal(new RuleSource(4, 4), RuleEvaluator.EvaluateSocks(rules, Request(address: "203.0.113.5")).Rule);
        Assert.Equal(new RuleVerdict(RuleAction.Block, RuleLog.None, null, null), RuleEvaluator.EvaluateSocks([], Request()));
    }

    [Fact]
    public void Evaluate_ParsedSockdConf_DecidesAsWritten()
    {
        var options = SockdConfParser.Parse("""
            internal: 127.0.0.1
            client pass { from: 10.0.0.0/8 to: 0/0 }
            socks block { from: 0/0 to: .example.com }
            socks pass { from: 10.0.0.0/8 to: 0/0 port 1 - 1024 command: connect }
            """, "t.conf").Options!;
        Assert.True(RuleEvaluator.EvaluateClient(options.ClientRules, new IPEndPoint(IPAddress.Parse("10.1.1.1"), 1), new IPEndPoint(IPAddress.Loopback, 1080)).Passed);
        Assert.False(RuleEvaluator.EvaluateClient(options.ClientRules, new IPEndPoint(IPAddress.Parse("11.1.1.1"), 1), new IPEndPoint(IPAddress.Loopback, 1080)).Passed);
        Assert.Equal(3, RuleEvaluator.EvaluateSocks(options.SocksRules, Request(host: "a.example.com", port: 80)).Rule!.Value.Line);
        Assert.True(RuleEvaluator.EvaluateSocks(options.SocksRules, Request(port: 80)).Passed);
        Assert.False(RuleEvaluator.EvaluateSocks(options.SocksRules, Request(port: 8080)).Passed);
    }

    [Theory]
    [InlineData("10.0.0.0", 8, "10.1.2.3", true)]
    [InlineData("::ffff:10.0.0.0", 104, "10.1.2.3", true)]
    [InlineData("::ffff:10.0.0.0", 104, "11.1.2.3", false)]
    [InlineData("0.0.0.0", 0, "1.2.3.4", true)]
    [InlineData("::", 0, "::1", true)]
    [InlineData("::", 0, "1.2.3.4", false)]
    public void InNetwork_AddressAndPrefix_IsInsideExactlyWhenCovered(string network, int prefix, string address, bool expected) =>
        Assert.Equal(expected, RuleEvaluator.InNetwork(IPAddress.Parse(address), IPAddress.Parse(network), prefix));
}
