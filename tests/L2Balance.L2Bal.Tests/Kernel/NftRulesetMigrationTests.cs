using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Kernel;
using Xunit;

namespace L2Balance.L2Bal.Tests.Kernel;

public class NftRulesetMigrationTests
{
    private static FilterSettings Migrating(MacMode mode = MacMode.Multicast) => NftRulesetTests.Sample(mode) with { Migrate = true };

    private static FlowTuple Flow(string source, int sport, int dport) =>
        new(ProtocolType.Tcp, new IPEndPoint(IPAddress.Parse(source), sport), new IPEndPoint(IPAddress.Parse("198.18.0.10"), dport));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Install_MigrationOff_HasNoneOfItsRules(bool unicastFlood)
    {
        var mode = unicastFlood ? MacMode.UnicastFlood : MacMode.Multicast;
        var text = NftRuleset.Install(NftRulesetTests.Sample(mode));

        foreach (var word in (string[])["moved_out", "moved_away", "moved_in", "socket mark", "0x4c320019", "0x20000"])
        {
            Assert.DoesNotContain(word, text, StringComparison.Ordinal);
        }
        Assert.Equal(text, NftRuleset.Install(NftRulesetTests.Sample(mode) with { Migrate = false }));
    }

    [Fact]
    public void Install_MigrationOn_DropsMovedOutFlowsBeforeTheEstablishedAccept()
    {
        var text = NftRuleset.Install(Migrating());

        NftRulesetTests.AssertInOrder(text,
            "chain prerouting {",
            "ip daddr != 198.18.0.10 accept",
            "tcp flags & (fin|syn|rst|ack) == syn meta mark set 0x4c320119",
            "tcp flags & (fin|syn|rst|ack) == syn|ack ct mark { 0x0, 0x20000 } socket transparent 0 ct mark set 0x0 delete @moved_away { meta l4proto . ip saddr . th sport . ip daddr . th dport }",
            "ct mark 0x20000 meta mark != 0x4c320119 counter name \"dropped_moved_out\" drop",
            "meta l4proto . ip saddr . th sport . ip daddr . th dport @moved_away meta mark != 0x4c320119 ct mark set 0x20000 counter name \"dropped_moved_out\" drop",
            "meta l4proto . ip saddr . th sport . ip daddr . th dport @moved_out counter name \"dropped_moved_out\" drop",
            "ct state established,related meta mark != 0x4c320119 counter name \"accepted_established\" accept");
        Assert.Contains("set moved_out { type inet_proto . ipv4_addr . inet_service . ipv4_addr . inet_service; flags dynamic, timeout; size 65536;", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Install_MigrationOn_BareSynOnAMovedTupleIsJudgedByTheOwnerRulesAndAnAcceptedOneLeavesMovedAway()
    {
        var text = NftRuleset.Install(Migrating());

        // Tagged ahead of the moved drops and the established accept, untagged before the owner rules; the accepts forget the tuple.
        NftRulesetTests.AssertInOrder(text,
            "chain prerouting {",
            "tcp flags & (fin|syn|rst|ack) == syn meta mark set 0x4c320119",
            "ct state established,related meta mark != 0x4c320119",
            "meta mark 0x4c320119 meta mark set 0x0",
            "iif \"lo\" accept",
            "\"dropped_slice_mid_flow\" drop",
            "tcp dport @own_slice tcp flags & (fin|syn|rst|ack) == syn ct mark set 0x0 delete @moved_away { meta l4proto . ip saddr . th sport . ip daddr . th dport }",
            "th dport @own_slice counter name \"accepted_slice\" accept",
            "meta mark != @owned counter name \"dropped_not_owned\" drop",
            "tcp flags & (fin|syn|rst|ack) == syn delete @moved_away { meta l4proto . ip saddr . th sport . ip daddr . th dport }",
            "tcp flags & (fin|syn|rst|ack) == syn ct mark set meta mark or 0x10000 meta mark set 0x0 counter name \"accepted_new\" accept");
        // The moved_out drop takes bare SYNs too (a move in progress) and no longer refreshes its timeout per packet.
        Assert.DoesNotContain("update @moved_out", text, StringComparison.Ordinal);
        Assert.DoesNotContain("0x4c320119", NftRuleset.Install(NftRulesetTests.Sample()), StringComparison.Ordinal);
    }

    [Fact]
    public void Install_MigrationOnWithAnIpv6Vip_Ip6TableHasTheIpTablesMigrationRulesInIpv6Words()
    {
        var dual = Migrating() with { Vip6 = IPAddress.Parse("fdc6:1200:10::a") };
        var text = NftRuleset.Install(dual);
        var plain = NftRuleset.Install(dual with { Migrate = false });

        // The ip table is the IPv4-only one, byte for byte; the ip6 table gains exactly the ip table's migration lines, in the same order.
        Assert.Equal(NftRulesetIpv6Tests.Table(NftRuleset.Install(Migrating()), "ip"), NftRulesetIpv6Tests.Table(text, "ip"));
        static List<string> Added(string with, string without) => [.. with.Split('\n').Where(l => !without.Split('\n').Contains(l))];
        var ipAdded = Added(NftRulesetIpv6Tests.Table(text, "ip"), NftRulesetIpv6Tests.Table(plain, "ip"));
        var ip6Added = Added(NftRulesetIpv6Tests.Table(text, "ip6"), NftRulesetIpv6Tests.Table(plain, "ip6"));
        Assert.Equal(17, ipAdded.Count);
        Assert.Equal(ipAdded.Select(l => l.Replace(" ip saddr", " ip6 saddr", StringComparison.Ordinal).Replace(" ip daddr", " ip6 daddr", StringComparison.Ordinal)
            .Replace("ipv4_addr", "ipv6_addr", StringComparison.Ordinal)), ip6Added);
        Assert.Contains("set moved_out { type inet_proto . ipv6_addr . inet_service . ipv6_addr . inet_service;", ip6Added[0], StringComparison.Ordinal);
    }

    [Fact]
    public void Install_MigrationOnWithAnIpv6Vip_NetdevLearnsAndPassesIpv6FlowsInASetOfTheirOwn()
    {
        var text = NftRuleset.Install(Migrating() with { Vip6 = IPAddress.Parse("fdc6:1200:10::a") });
        var netdev = NftRulesetIpv6Tests.Table(text, "netdev");

        Assert.Contains("set moved_in6 { type inet_proto . ipv6_addr . inet_service . ipv6_addr . inet_service; flags dynamic, timeout; size 65536;", netdev, StringComparison.Ordinal);
        NftRulesetTests.AssertInOrder(netdev,
            "chain ingress6 {",
            "th dport @own_slice accept",
            "meta l4proto . ip6 saddr . th sport . ip6 daddr . th dport @moved_in6 update @moved_in6 { meta l4proto . ip6 saddr . th sport . ip6 daddr . th dport timeout 3600s } meta mark set 0x0 counter name \"passed_moved_in\" accept",
            "meta l4proto udp th dport 32768-60999 meta mark set 0x0 accept",
            "counter name \"dropped_not_owned_early\" drop");
        NftRulesetTests.AssertInOrder(netdev,
            "chain egress {",
            "meta mark 0x4c320019 meta protocol ip update @moved_in { meta l4proto . ip daddr . th dport . ip saddr . th sport timeout 3600s }",
            "meta mark 0x4c320019 meta protocol ip6 update @moved_in6 { meta l4proto . ip6 daddr . th dport . ip6 saddr . th sport timeout 3600s }");
    }

    [Fact]
    public void Install_MigrationOn_AcceptsMarkedSocketsAheadOfTheSliceAndOwnerChecks()
    {
        var text = NftRuleset.Install(Migrating());

        NftRulesetTests.AssertInOrder(text,
            "chain prerouting {",
            "ct mark 0x40000 socket mark 0x4c320019 meta mark set 0x0 counter name \"accepted_moved_in\" accept",
            "ct mark 0x40000 meta mark != 0x4c320119 counter name \"dropped_moved_out\" drop",
            "ct state established,related",
            "iif \"lo\" accept",
            "meta l4proto { tcp, udp } socket mark 0x4c320019 ct mark set 0x40000 counter name \"accepted_moved_in\" accept",
            "\"dropped_slice_mid_flow\" drop",
            "th dport 32768-60999 counter name \"dropped_other_slice\" drop",
            "meta mark != @owned counter name \"dropped_not_owned\" drop",
            "counter name \"dropped_mid_flow\" drop");
    }

    [Fact]
    public void Install_MigrationOn_IngressPassesLearnedFlowsAndSliceUdpBeforeTheEarlyDrops()
    {
        var text = NftRuleset.Install(Migrating());

        NftRulesetTests.AssertInOrder(text,
            "chain ingress {",
            "meta mark @accept_buckets meta mark set 0x0 meta pkttype set host accept",
            "th dport @own_slice accept",
            "@moved_in update @moved_in { meta l4proto . ip saddr . th sport . ip daddr . th dport timeout 3600s } meta mark set 0x0 counter name \"passed_moved_in\" accept",
            "meta l4proto udp th dport 32768-60999 meta mark set 0x0 accept",
            "th dport 32768-60999 counter name \"dropped_other_slice\" drop",
            "counter name \"dropped_not_owned_early\" drop");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Install_MigrationOn_EgressLearnsTheMarkedSocketsFlowsReversed(bool unicastFlood)
    {
        var mode = unicastFlood ? MacMode.UnicastFlood : MacMode.Multicast;
        var text = NftRuleset.Install(Migrating(mode));

        NftRulesetTests.AssertInOrder(text,
            "chain egress {",
            "type filter hook egress device \"eth0\" priority 0; policy accept;",
            "meta mark 0x4c320019 meta protocol ip update @moved_in { meta l4proto . ip daddr . th dport . ip saddr . th sport timeout 3600s }");
        Assert.Equal(mode == MacMode.UnicastFlood, text.Contains("dropped_cluster_mac_source\" drop", StringComparison.Ordinal));
    }

    [Fact]
    public void Install_MigrationOn_OutputForgetsAMovedOutFlowWhoseSocketCameBackBeforeTheTcpAccept()
    {
        var text = NftRuleset.Install(Migrating());

        NftRulesetTests.AssertInOrder(text,
            "chain output {",
            "meta mark 0x4c320019 ct mark set 0x40000 delete @moved_away { meta l4proto . ip daddr . th dport . ip saddr . th sport } delete @moved_out { meta l4proto . ip daddr . th dport . ip saddr . th sport }",
            "meta l4proto tcp accept");
    }

    [Fact]
    public void Install_MigrationOn_EveryCounterIsDeclaredAndEveryRuleCommented()
    {
        var text = NftRuleset.Install(Migrating(MacMode.UnicastFlood));
        var used = System.Text.RegularExpressions.Regex.Matches(text, "counter name \"([a-z0-9_]+)\"").Select(m => m.Groups[1].Value).Distinct().ToList();

        Assert.Contains("passed_moved_in", used);
        Assert.All(used, name => Assert.Contains($"\tcounter {name} {{ comment", text, StringComparison.Ordinal));
        var comments = System.Text.RegularExpressions.Regex.Matches(text, "comment \"([^\"]*)\"").Select(m => m.Groups[1].Value);
        Assert.All(comments, c => Assert.True(c.Length <= 128, c));
    }

    [Fact]
    public void MovedOut_Add_PutsBothLegsWithTheTimeout()
    {
        var text = NftRuleset.MovedOut(Migrating(), [Flow("198.18.1.5", 40000, 1080), Flow("198.18.2.7", 443, 33000)], MovedFlowChange.Moving);

        Assert.Equal("add element ip l2bal moved_out { tcp . 198.18.1.5 . 40000 . 198.18.0.10 . 1080 timeout 300s, tcp . 198.18.2.7 . 443 . 198.18.0.10 . 33000 timeout 300s }\n", text);
    }

    [Fact]
    public void MovedOut_Stayed_AddsBeforeTheDeleteSoAnExpiredElementCannotFailTheTransaction()
    {
        var text = NftRuleset.MovedOut(Migrating(), [Flow("198.18.1.5", 40000, 1080)], MovedFlowChange.Stayed);

        Assert.Equal("add element ip l2bal moved_out { tcp . 198.18.1.5 . 40000 . 198.18.0.10 . 1080 timeout 300s }\n"
            + "delete element ip l2bal moved_out { tcp . 198.18.1.5 . 40000 . 198.18.0.10 . 1080 }\n", text);
        Assert.Equal(string.Empty, NftRuleset.MovedOut(Migrating(), [], MovedFlowChange.Stayed));
    }

    [Fact]
    public void MovedOut_Moved_GoesToMovedAwayAndLeavesMovedOut()
    {
        var text = NftRuleset.MovedOut(Migrating(), [Flow("198.18.1.5", 40000, 1080)], MovedFlowChange.Moved);

        Assert.Equal("add element ip l2bal moved_away { tcp . 198.18.1.5 . 40000 . 198.18.0.10 . 1080 timeout 86400s }\n"
            + "add element ip l2bal moved_out { tcp . 198.18.1.5 . 40000 . 198.18.0.10 . 1080 timeout 300s }\n"
            + "delete element ip l2bal moved_out { tcp . 198.18.1.5 . 40000 . 198.18.0.10 . 1080 }\n", text);
    }

    [Fact]
    public void MovedOut_IPv4AndIpv6Flows_EachGoToTheSetsOfTheirFamilysTable()
    {
        var v6 = new FlowTuple(ProtocolType.Tcp, new IPEndPoint(IPAddress.Parse("fdc6:1200:64::5"), 40000), new IPEndPoint(IPAddress.Parse("fdc6:1200:10::a"), 1080));
        var text = NftRuleset.MovedOut(Migrating() with { Vip6 = IPAddress.Parse("fdc6:1200:10::a") }, [v6, Flow("198.18.1.5", 40000, 1080)], MovedFlowChange.Moved);

        Assert.Equal("add element ip l2bal moved_away { tcp . 198.18.1.5 . 40000 . 198.18.0.10 . 1080 timeout 86400s }\n"
            + "add element ip l2bal moved_out { tcp . 198.18.1.5 . 40000 . 198.18.0.10 . 1080 timeout 300s }\n"
            + "delete element ip l2bal moved_out { tcp . 198.18.1.5 . 40000 . 198.18.0.10 . 1080 }\n"
            + "add element ip6 l2bal moved_away { tcp . fdc6:1200:64::5 . 40000 . fdc6:1200:10::a . 1080 timeout 86400s }\n"
            + "add element ip6 l2bal moved_out { tcp . fdc6:1200:64::5 . 40000 . fdc6:1200:10::a . 1080 timeout 300s }\n"
            + "delete element ip6 l2bal moved_out { tcp . fdc6:1200:64::5 . 40000 . fdc6:1200:10::a . 1080 }\n", text);
    }

    [Fact]
    public void MovedOut_WithoutMigrationOrForAFamilyWithoutItsVip_IsRefused()
    {
        Assert.Throws<InvalidOperationException>(() => NftRuleset.MovedOut(NftRulesetTests.Sample(), [Flow("198.18.1.5", 1, 2)], MovedFlowChange.Moving));
        var v6 = new FlowTuple(ProtocolType.Tcp, new IPEndPoint(IPAddress.Parse("fdc6:1200::5"), 1), new IPEndPoint(IPAddress.Parse("fdc6:1200:10::a"), 2));
        Assert.Throws<ArgumentException>(() => NftRuleset.MovedOut(Migrating(), [v6], MovedFlowChange.Moving));
        var mixed = v6 with { Destination = new IPEndPoint(IPAddress.Parse("198.18.0.10"), 2) };
        Assert.Throws<ArgumentException>(() => NftRuleset.MovedOut(Migrating() with { Vip6 = IPAddress.Parse("fdc6:1200:10::a") }, [mixed], MovedFlowChange.Moving));
    }
}
