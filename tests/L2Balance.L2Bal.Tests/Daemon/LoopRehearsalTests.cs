using L2Balance.Balancer.Config;
using L2Balance.Balancer.Daemon;
using L2Balance.Balancer.Diagnostics;
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
    public void Rehearse_AnyClusterShape_WalksClaimsCoverReturnHealthChangesDrainAndStall(int nodeId, int nodeCount, string interval)
    {
        var events = Rehearse(nodeId, nodeCount, interval);
        var peer = nodeId % nodeCount + 1;
        var text = string.Join("\n", events);
        Assert.Contains(events, e => e is PeerAlive a && a.Peer == peer);
        Assert.Contains(events, e => e is PeerDead d && d.Peer == peer);
        Assert.True(events.Count(e => e is PeerAlive a && a.Peer == peer) >= 2, $"the peer never returned:\n{text}");
        Assert.Contains(events, e => e is BucketsChanged { Claimed: > 0 });
        Assert.Contains(events, e => e is BucketsChanged { Released: > 0 });
        Assert.Contains(events, e => e is ReleasedAll { Cause: ReleaseCause.Stall });
        Assert.Contains(events, e => e is LocalStateChanged { Reason: StateReason.HealthFailing });
        Assert.Contains(events, e => e is LocalStateChanged { Reason: StateReason.DrainRequested });
        Assert.Contains(events, e => e is LocalStateChanged { Reason: StateReason.UndrainRequested });
    }

    [Fact]
    public void Rehearse_SingleNodeCluster_HoldsEveryBucketAndSeesNoPeer()
    {
        var events = Rehearse(1, 1, "40ms");
        Assert.Contains(events, e => e is BucketsChanged { Held: 4096, Buckets: 4096 });
        Assert.DoesNotContain(events, e => e is PeerAlive or PeerDead or PeerLeft or PeerStateChanged);
    }

    private static IReadOnlyList<BalancerEvent> Rehearse(int nodeId, int nodeCount, string interval)
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
