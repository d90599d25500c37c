using System.Net;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Kernel;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Kernel;

public class NftRulesetTests
{
    internal static FilterSettings Sample(MacMode mode = MacMode.Multicast, int buckets = 4096) => new(
        Interface: "eth0",
        Vip: IPAddress.Parse("198.18.0.10"),
        ClusterMac: MacAddress.Parse(mode == MacMode.Multicast ? "01:00:5e:00:00:0a" : "02:c1:00:00:00:0a"),
        Mode: mode,
        Buckets: buckets,
        Seed: 0x5eed,
        OwnSlice: new PortSpan(32768, 42178),
        AllSlices: new PortSpan(32768, 60999));

    private static IEnumerable<string> RuleLines(string text) =>
        text.Split('\n').Select(l => l.Trim()).Where(l =>
            l.Length > 0 && !l.StartsWith("table ", StringComparison.Ordinal) && !l.StartsWith("delete table", StringComparison.Ordinal)
            && !l.StartsWith("chain ", StringComparison.Ordinal) && !l.StartsWith("type filter hook", StringComparison.Ordinal)
            && !l.StartsWith("set ", StringComparison.Ordinal) && !System.Text.RegularExpressions.Regex.IsMatch(l, "^counter [a-z0-9_]+ \\{")
            && !l.StartsWith("flags ", StringComparison.Ordinal) && !l.StartsWith("comment ", StringComparison.Ordinal) && l != "}");

    [Fact]
    public void Install_Script_IsIdempotentWithCreateDeletePairsFirst()
    {
        var text = NftRuleset.Install(Sample());
        var lines = text.Split('\n');

        Assert.Equal(["table netdev l2bal { flags owner; }", "delete table netdev l2bal", "table ip l2bal { flags owner; }", "delete table ip l2bal"], lines[..4]);
        Assert.Equal("table netdev l2bal {", lines[4]);
    }

    [Fact]
    public void Install_BothTables_AreOwned()
    {
        var text = NftRuleset.Install(Sample());

        Assert.Equal(2, text.Split('\n').Count(l => l.Trim() == "flags owner;"));
        Assert.Equal(4, text.Split('\n').Count(l => l.Contains("flags owner;", StringComparison.Ordinal)));
        Assert.Contains("table netdev l2bal {\n\tflags owner;\n", text, StringComparison.Ordinal);
        Assert.Contains("table ip l2bal {\n\tflags owner;\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Install_EveryRule_HasAComment()
    {
        var rules = RuleLines(NftRuleset.Install(Sample(MacMode.UnicastFlood))).ToList();

        Assert.True(rules.Count >= 22, string.Join('\n', rules));
        Assert.All(rules, r => Assert.Matches(" comment \"[^\"]+\"$", r));
    }

    [Theory]
    [InlineData(4096, 0x5eedu, "jhash ip saddr mod 4096 seed 0x5eed")]
    [InlineData(1024, 0xdeadbeefu, "jhash ip saddr mod 1024 seed 0xdeadbeef")]
    [InlineData(4096, 0u, "jhash ip saddr mod 4096 seed 0x0")]
    public void Install_HashInBothTables_HasExplicitSeedAndModulus(int buckets, uint seed, string expected)
    {
        var text = NftRuleset.Install(Sample(buckets: buckets) with { Seed = seed });

        Assert.Equal(2, text.Split('\n').Count(l => l.Contains("meta mark set " + expected + " ", StringComparison.Ordinal)));
        Assert.DoesNotContain("jhash ip saddr mod " + buckets + " comment", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Install_IngressChain_PutsTheCommonCaseFirst()
    {
        var text = NftRuleset.Install(Sample());

        AssertInOrder(text,
            "type filter hook ingress device \"eth0\" priority -500; policy accept;",
            "ether daddr != 01:00:5e:00:00:0a accept comment",
            "meta protocol ip meta mark set jhash ip saddr mod 4096 seed 0x5eed meta mark @accept_buckets meta mark set 0x0 meta pkttype set host accept comment",
            "meta mark set 0x0 meta pkttype set host comment",
            "ether type arp accept comment",
            "meta protocol != ip counter name \"dropped_not_ipv4\" drop comment",
            "ip frag-off & 0x3fff != 0 accept comment",
            "meta l4proto icmp accept comment",
            "meta l4proto { tcp, udp } th dport @own_slice accept comment",
            "meta l4proto { tcp, udp } th dport 32768-60999 counter name \"dropped_other_slice\" drop comment",
            "counter name \"dropped_not_owned_early\" drop comment");
    }

    [Fact]
    public void Install_PreroutingChain_ChecksLeaseBeforeBucketOnSynOnly()
    {
        var text = NftRuleset.Install(Sample());

        AssertInOrder(text,
            "type filter hook prerouting priority -150; policy accept;",
            "ip daddr != 198.18.0.10 accept comment",
            "ct state established,related counter name \"accepted_established\" accept comment",
            "iif \"lo\" accept comment",
            "tcp dport @own_slice tcp flags & (fin|syn|rst|ack) != syn counter name \"dropped_slice_mid_flow\" drop comment",
            "meta l4proto { tcp, udp } th dport @own_slice counter name \"accepted_slice\" accept comment",
            "meta l4proto { tcp, udp } th dport 32768-60999 counter name \"dropped_other_slice\" drop comment",
            "meta mark set 0x1 meta mark != @lease counter name \"dropped_no_lease\" drop comment",
            "meta mark set jhash ip saddr mod 4096 seed 0x5eed comment",
            "meta mark != @owned counter name \"dropped_not_owned\" drop comment",
            "tcp flags & (fin|syn|rst|ack) == syn ct mark set meta mark or 0x10000 meta mark set 0x0 counter name \"accepted_new\" accept comment",
            "meta l4proto { udp, icmp } ct mark set meta mark or 0x10000 meta mark set 0x0 counter name \"accepted_new\" accept comment",
            "counter name \"dropped_mid_flow\" drop comment",
            "type filter hook output priority 0; policy accept;",
            "meta l4proto tcp accept comment",
            "meta mark 0x4c32424c ip daddr 127.0.0.1 udp dport 9 meta mark set 0x1 update @lease { meta mark timeout 80ms } counter name \"lease_renewed\" drop comment",
            "oifname != \"lo\" ip saddr 198.18.0.10 icmp type destination-unreachable icmp code port-unreachable counter name \"dropped_port_unreachable\" drop comment");
        Assert.DoesNotContain("reject", text, StringComparison.Ordinal);
        Assert.Contains("set lease { type mark; flags dynamic, timeout;", text, StringComparison.Ordinal);
        Assert.Contains("update @lease { meta mark timeout 250ms }", NftRuleset.Install(Sample() with { Lease = TimeSpan.FromMilliseconds(249.5) }), StringComparison.Ordinal);
        Assert.Contains("set owned { type mark; flags interval;", text, StringComparison.Ordinal);
        Assert.Contains("set accept_buckets { type mark; flags interval;", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Install_WakePorts_LogsTheirPortUnreachablesBeforeTheDropAndKeepsTheCounter()
    {
        var text = NftRuleset.Install(Sample() with { WakePorts = [53, 5353] });
        var logged = "oifname != \"lo\" ip saddr 198.18.0.10 icmp type destination-unreachable icmp code port-unreachable @th,64,8 0x45 @th,136,8 17 @th,240,16 { 53, 5353 } log group 19506 snaplen 64 counter name \"dropped_port_unreachable\" drop comment";
        var plain = "oifname != \"lo\" ip saddr 198.18.0.10 icmp type destination-unreachable icmp code port-unreachable counter name \"dropped_port_unreachable\" drop comment";
        Assert.True(text.IndexOf(logged, StringComparison.Ordinal) is >= 0 and var at && text.IndexOf(plain, StringComparison.Ordinal) > at, text);
        Assert.DoesNotContain("log group", NftRuleset.Install(Sample()), StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => NftRuleset.Install(Sample() with { WakePorts = [0] }));
    }

    [Fact]
    public void Install_EgressGuard_ExistsOnlyInUnicastFloodMode()
    {
        var unicast = NftRuleset.Install(Sample(MacMode.UnicastFlood));
        var multicast = NftRuleset.Install(Sample(MacMode.Multicast));

        Assert.Contains("type filter hook egress device \"eth0\" priority 0; policy accept;", unicast, StringComparison.Ordinal);
        Assert.Contains("ether saddr 02:c1:00:00:00:0a counter name \"dropped_cluster_mac_source\" drop comment", unicast, StringComparison.Ordinal);
        Assert.Contains("ether daddr != 02:c1:00:00:00:0a accept", unicast, StringComparison.Ordinal);
        Assert.DoesNotContain("egress", multicast, StringComparison.Ordinal);
    }

    [Fact]
    public void Install_EveryComment_FitsNftsLimit()
    {
        var text = NftRuleset.Install(Sample(MacMode.UnicastFlood) with
        {
            ServicePorts = [("tcp", 1080), ("udp", 53), ("tcp", 80)],
            AffinityRules = [new("udp", 53, AffinityMode.None), new("tcp", 80, AffinityMode.Network)],
        });
        var comments = System.Text.RegularExpressions.Regex.Matches(text, "comment \"([^\"]*)\"").Select(m => m.Groups[1].Value).ToList();

        Assert.NotEmpty(comments);
        Assert.All(comments, c => Assert.True(c.Length <= 128, $"nft refuses comments over 128 characters: {c.Length}: {c}"));
    }

    [Fact]
    public void Install_EveryNamedCounterUsed_IsDeclared()
    {
        var text = NftRuleset.Install(Sample(MacMode.UnicastFlood));
        var used = System.Text.RegularExpressions.Regex.Matches(text, "counter name \"([a-z0-9_]+)\"").Select(m => m.Groups[1].Value).Distinct();

        Assert.All(used, name => Assert.Contains($"\tcounter {name} {{ comment", text, StringComparison.Ordinal));
    }

    [Fact]
    public void Apply_Ranges_ReplaceBothSetsAndRenewTheLease()
    {
        var owned = new BucketSet(4096);
        var accepted = new BucketSet(4096);
        foreach (int b in new[] { 0, 1, 2, 3, 7, 4095 })
        {
            owned.Add(b);
            accepted.Add(b);
        }

        accepted.Add(9);

        var text = NftRuleset.Apply(Sample(), owned, accepted, ownSlice: true, TimeSpan.FromMilliseconds(300));

        Assert.Equal(
            "flush set ip l2bal owned\n"
            + "add element ip l2bal owned { 0-3, 7, 4095 }\n"
            + "flush set netdev l2bal accept_buckets\n"
            + "add element netdev l2bal accept_buckets { 0-3, 7, 9, 4095 }\n"
            + "flush set netdev l2bal own_slice\n"
            + "add element netdev l2bal own_slice { 32768-42178 }\n"
            + "flush set ip l2bal own_slice\n"
            + "add element ip l2bal own_slice { 32768-42178 }\n"
            + "flush set ip l2bal lease\n"
            + "add element ip l2bal lease { 0x1 timeout 300ms }\n",
            text);
    }

    [Fact]
    public void Apply_EmptySets_OnlyFlush()
    {
        var text = NftRuleset.Apply(Sample(), new BucketSet(4096), new BucketSet(4096), ownSlice: false, TimeSpan.FromSeconds(1.5));

        Assert.Equal(
            "flush set ip l2bal owned\nflush set netdev l2bal accept_buckets\n"
            + "flush set netdev l2bal own_slice\nflush set ip l2bal own_slice\n"
            + "flush set ip l2bal lease\nadd element ip l2bal lease { 0x1 timeout 1500ms }\n",
            text);
        Assert.DoesNotContain("{ }", text, StringComparison.Ordinal);
    }

    [Fact]
    public void SliceSets_EmptyThenGrantedASinglePortSlice_HoldItAsOneElement()
    {
        var settings = Sample() with { OwnSlice = new PortSpan(40000, 40000) };
        var install = NftRuleset.Install(settings);
        Assert.Equal(2, install.Split("set own_slice { type inet_service; flags interval;").Length - 1);
        Assert.DoesNotContain("add element", install, StringComparison.Ordinal);

        var apply = NftRuleset.Apply(settings, new BucketSet(4096), new BucketSet(4096), ownSlice: true, TimeSpan.FromSeconds(1));
        Assert.Contains("add element netdev l2bal own_slice { 40000 }\n", apply, StringComparison.Ordinal);
        Assert.Contains("add element ip l2bal own_slice { 40000 }\n", apply, StringComparison.Ordinal);
    }

    [Fact]
    public void Apply_OwnedOutsideAccepted_Throws()
    {
        var owned = new BucketSet(4096);
        owned.Add(5);

        Assert.Throws<ArgumentException>(() => NftRuleset.Apply(Sample(), owned, new BucketSet(4096), ownSlice: true, TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public void Apply_WrongCapacity_Throws()
    {
        Assert.Throws<ArgumentException>(() => NftRuleset.Apply(Sample(), new BucketSet(1024), new BucketSet(4096), ownSlice: true, TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public void RenewLease_FractionalTimeout_IsRoundedUpToMilliseconds()
    {
        Assert.Equal(
            "flush set ip l2bal lease\nadd element ip l2bal lease { 0x1 timeout 251ms }\n",
            NftRuleset.RenewLease(Sample(), TimeSpan.FromMilliseconds(250.2)));
        Assert.Throws<ArgumentOutOfRangeException>(() => NftRuleset.RenewLease(Sample(), TimeSpan.Zero));
    }

    [Fact]
    public void Remove_Script_IsIdempotent()
    {
        Assert.Equal(
            "table netdev l2bal { flags owner; }\ndelete table netdev l2bal\ntable ip l2bal { flags owner; }\ndelete table ip l2bal\n",
            NftRuleset.Remove(Sample()));
    }

    [Theory]
    [InlineData("eth0; flush ruleset", "l2bal")]
    [InlineData("eth0", "l2bal\"")]
    [InlineData("", "l2bal")]
    public void Install_NameThatIsNotPlain_IsRefused(string iface, string table)
    {
        Assert.Throws<ArgumentException>(() => NftRuleset.Install(Sample() with { Interface = iface, TableName = table }));
    }

    [Fact]
    public void Install_BadSettings_AreRefused()
    {
        Assert.Throws<ArgumentException>(() => NftRuleset.Install(Sample() with { Vip = IPAddress.Parse("fdc6::10") }));
        Assert.Throws<ArgumentException>(() => NftRuleset.Install(Sample(buckets: 0x10001)));
        Assert.Throws<ArgumentException>(() => NftRuleset.Install(Sample() with { OwnSlice = new PortSpan(30000, 40000) }));
    }

    [Fact]
    public void Elements_SingletonsAndRuns_BecomeValuesAndIntervals()
    {
        var set = new BucketSet(16);
        foreach (int b in new[] { 0, 2, 3, 4, 15 })
        {
            set.Add(b);
        }

        Assert.Equal("0, 2-4, 15", NftRuleset.Elements(set));
        Assert.Equal("", NftRuleset.Elements(new BucketSet(16)));
    }

    internal static void AssertInOrder(string text, params string[] fragments)
    {
        int at = 0;
        foreach (var f in fragments)
        {
            int next = text.IndexOf(f, at, StringComparison.Ordinal);
            Assert.True(next >= 0, $"missing (in order) after offset {at}: {f}\n{text}");
            at = next + f.Length;
        }
    }
}

public class NftRulesetServiceTests
{
    [Fact]
    public void Services_WhenGiven_RestrictNewFlowsToTheirPorts()
    {
        var without = NftRuleset.Install(NftRulesetTests.Sample());
        Assert.DoesNotContain("dropped_not_service", without, StringComparison.Ordinal);

        var with = NftRuleset.Install(NftRulesetTests.Sample() with { ServicePorts = [("tcp", 1080), ("udp", 1080)] });
        Assert.Contains(
            "meta l4proto { tcp, udp } meta l4proto . th dport != { tcp . 1080, udp . 1080 } counter name \"dropped_not_service\" drop comment",
            with, StringComparison.Ordinal);
        // Judged after the bucket and lease checks, before the new-flow accepts.
        Assert.True(with.IndexOf("dropped_not_service\" drop", StringComparison.Ordinal) > with.IndexOf("\"dropped_not_owned\" drop", StringComparison.Ordinal));
        Assert.True(with.IndexOf("dropped_not_service\" drop", StringComparison.Ordinal) < with.IndexOf("\"accepted_new\" accept", StringComparison.Ordinal));
    }
}

public class NftRulesetAffinityTests
{
    private static FilterSettings WithRules(params AffinityRule[] rules) => NftRulesetTests.Sample() with
    {
        ServicePorts = [("tcp", 1080), ("udp", 1080), ("udp", 53), ("tcp", 53), ("tcp", 80)],
        AffinityRules = rules,
    };

    [Fact]
    public void Install_NoRulesOrOnlySingle_IsTheRulesetWithoutAffinity()
    {
        var plain = NftRuleset.Install(WithRules());

        Assert.Equal(plain, NftRuleset.Install(WithRules(new AffinityRule("udp", 53, AffinityMode.Single))));
        Assert.DoesNotContain("vmap", plain, StringComparison.Ordinal);
        Assert.DoesNotContain("affinity_", plain, StringComparison.Ordinal);
    }

    [Fact]
    public void Install_RulesOfTwoModes_MapEachPortToTheChainOfItsKeyInBothTables()
    {
        var text = NftRuleset.Install(WithRules(new AffinityRule("tcp", 80, AffinityMode.Network), new AffinityRule("udp", 53, AffinityMode.None)));
        const string map = "meta l4proto . th dport vmap { tcp . 80 : jump affinity_network, udp . 53 : jump affinity_none }";

        Assert.Equal(2, text.Split('\n').Count(l => l.Contains(map, StringComparison.Ordinal)));
        // Three: both tables' none chains and the stateless chain of udp/53.
        Assert.Equal(3, text.Split('\n').Count(l => l.Contains("meta mark set jhash ip saddr . th sport mod 4096 seed 0x5eed ", StringComparison.Ordinal)));
        Assert.Equal(2, text.Split('\n').Count(l => l.Contains("meta mark set jhash ip saddr & 255.255.255.0 mod 4096 seed 0x5eed ", StringComparison.Ordinal)));
        Assert.Equal(2, text.Split('\n').Count(l => l.Trim() == "chain affinity_none {"));
        Assert.Equal(2, text.Split('\n').Count(l => l.Trim() == "chain affinity_network {"));
    }

    [Fact]
    public void Install_Rules_DispatchBeforeTheCommonIngressRuleAndOverrideTheBucketInPrerouting()
    {
        var text = NftRuleset.Install(WithRules(new AffinityRule("udp", 53, AffinityMode.None)));
        var ingress = text[text.IndexOf("chain ingress", StringComparison.Ordinal)..];
        var prerouting = text[text.IndexOf("chain prerouting", StringComparison.Ordinal)..];

        Assert.True(ingress.IndexOf("vmap", StringComparison.Ordinal) < ingress.IndexOf("meta mark set jhash ip saddr mod", StringComparison.Ordinal));
        Assert.True(prerouting.IndexOf("meta mark set jhash ip saddr mod", StringComparison.Ordinal) < prerouting.IndexOf("vmap", StringComparison.Ordinal));
        Assert.True(prerouting.IndexOf("vmap", StringComparison.Ordinal) < prerouting.IndexOf("meta mark != @owned", StringComparison.Ordinal));
        // The netdev chain decides alone: owned or draining goes on, a first fragment waits for reassembly, the rest drops early.
        var chain = ingress[ingress.IndexOf("chain affinity_none", StringComparison.Ordinal)..];
        Assert.Contains("meta mark set jhash ip saddr . th sport mod 4096 seed 0x5eed meta mark @accept_buckets meta mark set 0x0 meta pkttype set host accept", chain, StringComparison.Ordinal);
        Assert.Contains("ip frag-off & 0x3fff != 0 meta mark set 0x0 meta pkttype set host accept", chain, StringComparison.Ordinal);
        Assert.Contains("counter name \"dropped_not_owned_early\" drop", chain, StringComparison.Ordinal);
    }

    [Fact]
    public void Install_UdpPortOfAffinityNone_JudgesEstablishedFlowsByOwnedBucketToo()
    {
        var text = NftRuleset.Install(WithRules(new AffinityRule("udp", 53, AffinityMode.None), new AffinityRule("tcp", 53, AffinityMode.None)));
        var ip = text[text.IndexOf("table ip ", StringComparison.Ordinal)..];
        var prerouting = ip[ip.IndexOf("chain prerouting", StringComparison.Ordinal)..];

        // Before the established rule, and only for UDP from the segment: TCP of a none port keeps draining.
        Assert.True(prerouting.IndexOf("iif != \"lo\" udp dport { 53 } jump stateless_udp", StringComparison.Ordinal)
            is var jump and >= 0 && jump < prerouting.IndexOf("ct state established,related", StringComparison.Ordinal));
        Assert.DoesNotContain("tcp dport { 53 } jump stateless_udp", text, StringComparison.Ordinal);
        var chain = ip[ip.IndexOf("chain stateless_udp", StringComparison.Ordinal)..];
        Assert.Contains("meta mark set jhash ip saddr . th sport mod 4096 seed 0x5eed meta mark @owned meta mark set 0x0 return", chain, StringComparison.Ordinal);
        Assert.Contains("counter name \"dropped_stateless_not_owned\" drop", chain, StringComparison.Ordinal);
        Assert.DoesNotContain("stateless_udp", NftRuleset.Install(WithRules(new AffinityRule("udp", 53, AffinityMode.Network))), StringComparison.Ordinal);
    }

    [Fact]
    public void Install_RuleForAPortThatIsNoService_IsRejected()
    {
        var settings = NftRulesetTests.Sample() with { ServicePorts = [("tcp", 1080)], AffinityRules = [new("udp", 53, AffinityMode.None)] };

        Assert.Throws<ArgumentException>(() => NftRuleset.Install(settings));
    }

    [Theory]
    [InlineData("single", "ip saddr", "ip6 saddr")]
    [InlineData("none", "ip saddr . th sport", "ip6 saddr . th sport")]
    [InlineData("network", "ip saddr & 255.255.255.0", "ip6 saddr & ffff:ffff:ffff:ff00::")]
    public void HashKey_EachModeForEachFamily_IsItsNftKey(string name, string expected, string expected6)
    {
        var mode = AffinityRule.Modes.Single(m => m.Name == name).Mode;
        Assert.Equal(expected, NftRuleset.HashKey(mode, System.Net.Sockets.AddressFamily.InterNetwork));
        Assert.Equal(expected6, NftRuleset.HashKey(mode, System.Net.Sockets.AddressFamily.InterNetworkV6));
        Assert.Throws<ArgumentException>(() => NftRuleset.HashKey(mode, System.Net.Sockets.AddressFamily.Unix));
    }
}

/// <summary>The ip6 half of the filter (docs/design.md#the-ip6-filter): an ip6 table beside the ip one, same sets and counters.</summary>
public class NftRulesetIpv6Tests
{
    internal static FilterSettings DualStack() => NftRulesetTests.Sample() with { Vip6 = IPAddress.Parse("fdc6:1200:10::a") };

    /// <summary><paramref name="s"/> with two services of affinity none and network.</summary>
    internal static FilterSettings WithAffinity(FilterSettings s) => s with
    {
        ServicePorts = [("udp", 53), ("tcp", 80)],
        AffinityRules = [new("udp", 53, AffinityMode.None), new("tcp", 80, AffinityMode.Network)],
    };

    /// <summary>The text of one family's table in a ruleset.</summary>
    internal static string Table(string text, string family)
    {
        int start = text.IndexOf($"table {family} l2bal {{\n", StringComparison.Ordinal);
        Assert.True(start >= 0, text);
        int end = text.IndexOf("\n}\n", start, StringComparison.Ordinal);
        return text[start..(end + 3)];
    }

    [Fact]
    public void Install_Ipv4Only_HasNoIp6Table()
    {
        var text = NftRuleset.Install(NftRulesetTests.Sample());

        Assert.DoesNotContain("ip6", text, StringComparison.Ordinal);
        Assert.DoesNotContain(NftRuleset.Ingress6Chain, text, StringComparison.Ordinal);
    }

    [Fact]
    public void Install_DualStack_Ip6TableMirrorsTheIpTableInIpv6Words()
    {
        var text = NftRuleset.Install(DualStack());
        var ip = Table(text, "ip");
        var ip6 = Table(text, "ip6");

        Assert.Contains("table ip6 l2bal { flags owner; }\ndelete table ip6 l2bal\n", text, StringComparison.Ordinal);
        Assert.Contains("ip6 daddr != fdc6:1200:10::a accept", ip6, StringComparison.Ordinal);
        Assert.Contains("meta mark set jhash ip6 saddr mod 4096 seed 0x5eed comment", ip6, StringComparison.Ordinal);
        Assert.Contains("meta l4proto { udp, ipv6-icmp } ct mark set meta mark or 0x10000", ip6, StringComparison.Ordinal);
        Assert.Contains("meta mark 0x4c32424c ip6 daddr ::1 udp dport 9 meta mark set 0x1 update @lease", ip6, StringComparison.Ordinal);
        Assert.Contains("oifname != \"lo\" ip6 saddr fdc6:1200:10::a icmpv6 type destination-unreachable icmpv6 code port-unreachable", ip6, StringComparison.Ordinal);
        Assert.DoesNotContain(" ip saddr", ip6, StringComparison.Ordinal);
        Assert.DoesNotContain("ip daddr", ip6, StringComparison.Ordinal);

        // The same sets and counters, by name, in both tables: one ownership, counters summed by name.
        static string[] Declared(string table, string what) =>
            [.. System.Text.RegularExpressions.Regex.Matches(table, $"\t{what} ([a-z0-9_]+) \\{{").Select(m => m.Groups[1].Value)];
        Assert.Equal(Declared(ip, "set"), Declared(ip6, "set"));
        Assert.Equal(Declared(ip, "counter"), Declared(ip6, "counter"));

        // The IPv4 table is what it is without an IPv6 VIP.
        Assert.Equal(Table(NftRuleset.Install(NftRulesetTests.Sample()), "ip"), ip);
    }

    [Fact]
    public void Install_DualStack_IngressJudgesIpv6InItsChainAfterIpv4sCommonCase()
    {
        var text = NftRuleset.Install(DualStack());
        var netdev = Table(text, "netdev");

        int common = netdev.IndexOf("meta protocol ip meta mark set jhash ip saddr", StringComparison.Ordinal);
        int jump = netdev.IndexOf("meta protocol ip6 jump ingress6", StringComparison.Ordinal);
        Assert.True(common >= 0 && jump > common, netdev);
        var chain = netdev[netdev.IndexOf("chain ingress6 {", StringComparison.Ordinal)..];
        Assert.StartsWith("chain ingress6 {\n\t\tmeta mark set jhash ip6 saddr mod 4096 seed 0x5eed meta mark @accept_buckets meta mark set 0x0 meta pkttype set host accept", chain, StringComparison.Ordinal);
        Assert.Contains("icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept", chain, StringComparison.Ordinal);
        Assert.Contains("exthdr frag exists accept", chain, StringComparison.Ordinal);
        Assert.Contains("counter name \"dropped_not_owned_early\" drop", chain, StringComparison.Ordinal);
    }

    [Fact]
    public void Install_DualStackWithAffinity_HashesEachFamilyByItsKey()
    {
        var text = NftRuleset.Install(WithAffinity(DualStack()));
        var netdev = Table(text, "netdev");
        var ip6 = Table(text, "ip6");

        Assert.Contains("meta l4proto . th dport vmap { tcp . 80 : jump affinity6_network, udp . 53 : jump affinity6_none }", netdev, StringComparison.Ordinal);
        Assert.Contains("meta mark set jhash ip6 saddr . th sport mod 4096 seed 0x5eed meta mark @accept_buckets", netdev, StringComparison.Ordinal);
        Assert.Contains("meta mark set jhash ip6 saddr & ffff:ffff:ffff:ff00:: mod 4096 seed 0x5eed meta mark @accept_buckets", netdev, StringComparison.Ordinal);
        Assert.Contains("meta mark set jhash ip6 saddr . th sport mod 4096 seed 0x5eed meta mark @owned meta mark set 0x0 return", ip6, StringComparison.Ordinal);
        Assert.Contains("meta mark set jhash ip6 saddr & ffff:ffff:ffff:ff00:: mod 4096 seed 0x5eed comment", ip6, StringComparison.Ordinal);
    }

    [Fact]
    public void ApplyAndRenewLease_DualStack_ChangeBothFamiliesInOneTransaction()
    {
        var owned = new BucketSet(4096);
        for (var b = 0; b <= 1364; b++)
        {
            owned.Add(b);
        }
        var apply = NftRuleset.Apply(DualStack(), owned, owned, ownSlice: true, TimeSpan.FromMilliseconds(80));

        Assert.Contains("flush set ip l2bal owned\nadd element ip l2bal owned { 0-1364 }\n", apply, StringComparison.Ordinal);
        Assert.Contains("flush set ip6 l2bal owned\nadd element ip6 l2bal owned { 0-1364 }\n", apply, StringComparison.Ordinal);
        Assert.Contains("add element ip6 l2bal own_slice { 32768-42178 }", apply, StringComparison.Ordinal);
        Assert.Contains("add element ip6 l2bal lease { 0x1 timeout 80ms }", apply, StringComparison.Ordinal);
        Assert.Contains("add element ip6 l2bal lease { 0x1 timeout 80ms }", NftRuleset.RenewLease(DualStack(), TimeSpan.FromMilliseconds(80)), StringComparison.Ordinal);
        Assert.EndsWith("table ip6 l2bal { flags owner; }\ndelete table ip6 l2bal\n", NftRuleset.Remove(DualStack()), StringComparison.Ordinal);
    }

    [Fact]
    public void Install_SecondVipNotPlainIpv6_IsRefused()
    {
        Assert.Throws<ArgumentException>(() => NftRuleset.Install(DualStack() with { Vip6 = IPAddress.Parse("198.18.0.11") }));
        Assert.Throws<ArgumentException>(() => NftRuleset.Install(DualStack() with { Vip6 = IPAddress.Parse("::ffff:198.18.0.11") }));
    }
}
