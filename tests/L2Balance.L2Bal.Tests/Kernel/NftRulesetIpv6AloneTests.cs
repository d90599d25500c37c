using System.Net;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Kernel;
using Xunit;

namespace L2Balance.L2Bal.Tests.Kernel;

/// <summary>An IPv6 VIP alone (docs/design.md#an-ipv6-vip-alone): the netdev and ip6 tables of a dual-stack node, no ip table.</summary>
public class NftRulesetIpv6AloneTests
{
    private static FilterSettings Alone() => NftRulesetIpv6Tests.DualStack() with { Vip = null };

    private static string Table(string text, string family) => NftRulesetIpv6Tests.Table(text, family);

    [Fact]
    public void Install_Ipv6Alone_HasTheDualStackIp6TableAndNoIpTable()
    {
        var text = NftRuleset.Install(Alone());

        Assert.DoesNotContain("table ip l2bal", text, StringComparison.Ordinal);
        Assert.Equal(Table(NftRuleset.Install(NftRulesetIpv6Tests.DualStack()), "ip6"), Table(text, "ip6"));
        Assert.StartsWith("table netdev l2bal { flags owner; }\ndelete table netdev l2bal\ntable ip6 l2bal { flags owner; }\ndelete table ip6 l2bal\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Install_Ipv6Alone_IngressJumpsToIpv6sChainAndDropsEverythingElse()
    {
        var netdev = Table(NftRuleset.Install(Alone()), "netdev");
        var ingress = netdev[netdev.IndexOf("chain ingress {", StringComparison.Ordinal)..netdev.IndexOf("chain ingress6 {", StringComparison.Ordinal)];

        Assert.DoesNotContain("ip saddr", netdev, StringComparison.Ordinal);
        Assert.DoesNotContain("ether type arp", netdev, StringComparison.Ordinal);
        int jump = ingress.IndexOf("meta protocol ip6 jump ingress6", StringComparison.Ordinal);
        int drop = ingress.IndexOf("counter name \"dropped_not_ipv4\" drop", StringComparison.Ordinal);
        Assert.True(jump > 0 && drop > jump, ingress);
        Assert.EndsWith("drop comment \"no IPv4 VIP: frames other than IPv6 (which ended in its chain) have no table\"\n\t}\n\t", ingress, StringComparison.Ordinal);
        Assert.Contains("icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept", netdev, StringComparison.Ordinal);
    }

    [Fact]
    public void Install_Ipv6AloneWithAffinity_HasOnlyIpv6sAffinityChains()
    {
        var netdev = Table(NftRuleset.Install(NftRulesetIpv6Tests.WithAffinity(Alone())), "netdev");

        Assert.Contains("chain affinity6_none {", netdev, StringComparison.Ordinal);
        Assert.DoesNotContain("chain affinity_none {", netdev, StringComparison.Ordinal);
        Assert.DoesNotContain("meta protocol ip ip frag-off", netdev, StringComparison.Ordinal);
    }

    [Fact]
    public void ApplyRenewRemove_Ipv6Alone_TouchOnlyTheNetdevAndIp6Tables()
    {
        var owned = new BucketSet(4096);
        owned.Add(7);
        var apply = NftRuleset.Apply(Alone(), owned, owned, ownSlice: true, TimeSpan.FromMilliseconds(80));
        var lease = NftRuleset.RenewLease(Alone(), TimeSpan.FromMilliseconds(80));
        var remove = NftRuleset.Remove(Alone());

        Assert.Contains("flush set ip6 l2bal owned\nadd element ip6 l2bal owned { 7 }\n", apply, StringComparison.Ordinal);
        Assert.Contains("add element netdev l2bal own_slice", apply, StringComparison.Ordinal);
        Assert.Equal("flush set ip6 l2bal lease\nadd element ip6 l2bal lease { 0x1 timeout 80ms }\n", lease);
        Assert.Equal(["ip6"], NftRuleset.FlowFamilies(Alone()));
        foreach (var text in new[] { apply, lease, remove })
        {
            Assert.DoesNotContain(" ip l2bal", text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Install_Ipv6AloneWithMigration_HasTheDualStackIp6TableAndOnlyIpv6sMovedInSet()
    {
        var text = NftRuleset.Install(Alone() with { Migrate = true });
        var netdev = Table(text, "netdev");

        Assert.Equal(Table(NftRuleset.Install(NftRulesetIpv6Tests.DualStack() with { Migrate = true }), "ip6"), Table(text, "ip6"));
        // The IPv6 set and its egress rule; nothing of the IPv4 one.
        foreach (var (line, present) in new[] { ("set moved_in6 {", true), ("meta mark 0x4c320019 meta protocol ip6 update @moved_in6", true), ("set moved_in {", false), ("meta protocol ip update", false) })
        {
            Assert.True(netdev.Contains(line, StringComparison.Ordinal) == present, $"{line}: {(present ? "missing" : "present")}\n{netdev}");
        }
    }

    [Fact]
    public void Install_NoVip_IsRefused()
    {
        Assert.Throws<ArgumentException>(() => NftRuleset.Install(NftRulesetTests.Sample() with { Vip = null }));
        Assert.Throws<ArgumentException>(() => NftRuleset.Install(Alone() with { Vip = IPAddress.Parse("fdc6:1200:10::b") }));
    }
}
