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
    public void Install_MigrationOnWithAnIpv6Vip_KeepsTheMovedFlowRulesInTheIpTableOnly()
    {
        var text = NftRuleset.Install(Migrating() with { Vip6 = IPAddress.Parse("fdc6:1200:10::a") });

        // The last mention of each table is its body (the first ones are the delete pairs ahead of it).
        int ip6 = text.LastIndexOf("table ip6 ", StringComparison.Ordinal);
        int ip = text.LastIndexOf("table ip ", ip6, StringComparison.Ordinal);
        Assert.True(ip >= 0 && ip6 > ip, text);
        var ipTable = text[ip..ip6];
        var ip6Table = text[ip6..];
        // The moved-flow sets are keyed by IPv4 5-tuples; the IPv6 VIP's sessions are refused as "ipv6" instead.
        foreach (var word in (string[])["moved_out", "moved_away", "socket mark 0x4c320019", "0x20000"])
        {
            Assert.Contains(word, ipTable, StringComparison.Ordinal);
            Assert.DoesNotContain(word, ip6Table, StringComparison.Ordinal);
        }
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
    public void MovedOut_WithoutMigrationOrForAnIpv6Flow_IsRefused()
    {
        Assert.Throws<InvalidOperationException>(() => NftRuleset.MovedOut(NftRulesetTests.Sample(), [Flow("198.18.1.5", 1, 2)], MovedFlowChange.Moving));
        var v6 = new FlowTuple(ProtocolType.Tcp, new IPEndPoint(IPAddress.Parse("fdc6:1200::5"), 1), new IPEndPoint(IPAddress.Parse("198.18.0.10"), 2));
        Assert.Throws<ArgumentException>(() => NftRuleset.MovedOut(Migrating(), [v6], MovedFlowChange.Moving));
    }
}
