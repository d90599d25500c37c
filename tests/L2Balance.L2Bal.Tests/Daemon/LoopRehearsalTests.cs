using L2Balance.Balancer.Config;
using L2Balance.Balancer.Daemon;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Daemon;

/// <summary>
/// The rehearsal must walk the paths the loop takes later (else the loop compiles them while
/// peers wait for its adverts), for every cluster shape, without failing.
/// </summary>
public class LoopRehearsalTests
{
    [Theory]
    [InlineData(2, 3, "40ms")]
    [InlineData(1, 2, "8ms")]
    [InlineData(64, 64, "1s")]
    public void It_rehearses_the_claims_a_cover_the_return_health_changes_and_a_stall(int nodeId, int nodeCount, string interval)
    {
        var events = Rehearse(nodeId, nodeCount, interval).Select(e => e.Change).ToArray();
        var peer = nodeId % nodeCount + 1;
        var text = string.Join("\n", events);
        Assert.Contains(events, e => e.StartsWith($"peer {peer} is alive", StringComparison.Ordinal));
        Assert.Contains(events, e => e.StartsWith($"peer {peer} is dead", StringComparison.Ordinal));
        Assert.True(events.Count(e => e.StartsWith($"peer {peer} is alive", StringComparison.Ordinal)) >= 2, $"the peer never returned:\n{text}");
        Assert.Contains(events, e => e.StartsWith("now holding", StringComparison.Ordinal) && !e.Contains("claimed 0,", StringComparison.Ordinal));
        Assert.Contains(events, e => e.StartsWith("now holding", StringComparison.Ordinal) && !e.Contains("released 0,", StringComparison.Ordinal));
        Assert.Contains(events, e => e.StartsWith("released all", StringComparison.Ordinal));
    }

    [Fact]
    public void A_single_node_cluster_rehearses_alone()
    {
        var events = Rehearse(1, 1, "40ms").Select(e => e.Change).ToArray();
        Assert.Contains(events, e => e.StartsWith("now holding 4096 of 4096", StringComparison.Ordinal));
        Assert.DoesNotContain(events, e => e.StartsWith("peer ", StringComparison.Ordinal));
    }

    private static IReadOnlyList<Balancer.Cluster.MembershipEvent> Rehearse(int nodeId, int nodeCount, string interval)
    {
        var run = Assert.IsType<BalancerCommand.Run>(BalancerCommandLine.Parse(
            ["run", "--interface", "eth0", "--vip", "198.18.0.10/24", "--node-id", $"{nodeId}", "--node-count", $"{nodeCount}",
             "--key-file", "/etc/l2bal/key", "--advert-interval", interval]));
        var o = run.Options;
        var key = new byte[32];
        var digest = AdvertConfigDigest.Compute(o.Vip, o.Buckets, o.EffectiveSeed, o.NodeCount, o.EffectiveClusterId);
        return LoopRehearsal.Run(o, key, digest, BalancerDaemon.FilterSettingsFor(o, ClusterMac.Multicast(o.EffectiveClusterId)));
    }
}
