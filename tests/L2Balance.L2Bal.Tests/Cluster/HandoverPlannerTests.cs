using L2Balance.Balancer.Cluster;
using Xunit;

namespace L2Balance.L2Bal.Tests.Cluster;

public class HandoverPlannerTests
{
    private const int B = 64;

    private static OwnershipTable Table(ulong active) => Ownership.Compute(MembershipView.FromActiveMask(3, B, active));

    [Fact]
    public void Releases_at_once_even_when_claims_are_gated()
    {
        // Node 1 covered node 3's buckets; node 3 is back: release them without waiting.
        var held = Table(0b011).SetOf(1);
        var plan = HandoverPlanner.Plan(1, held, Table(0b111), [Table(0b011), Table(0b111)], claimsAllowed: false);
        Assert.Equal(Table(0b111).SetOf(1), plan.Held);
        Assert.Equal(held.Count - Table(0b111).CountOf(1), plan.Released);
        Assert.Equal(0, plan.Claimed);
        Assert.True(plan.Settled);
    }

    [Fact]
    public void Takes_over_from_a_dead_peer_immediately()
    {
        var plan = HandoverPlanner.Plan(1, Table(0b111).SetOf(1), Table(0b011), [Table(0b011)], claimsAllowed: true);
        Assert.Equal(Table(0b011).SetOf(1), plan.Held);
        Assert.Equal(Table(0b011).CountOf(1) - Table(0b111).CountOf(1), plan.Claimed);
    }

    [Fact]
    public void Joiner_waits_until_the_holder_advertises_the_release()
    {
        var target = Table(0b111);
        // Node 3 returns; node 1 still advertises the view without it, node 2 already has it.
        // Node 1's view gives each of node 3's buckets to node 1 or node 2: any of them may still
        // be held or about to be claimed there, so node 3 claims none yet.
        var waiting = HandoverPlanner.Plan(3, new BucketSet(B), target, [Table(0b011), target], claimsAllowed: true);
        Assert.Equal(0, waiting.Held.Count);
        Assert.Equal(target.CountOf(3), waiting.Pending);
        Assert.False(waiting.Settled);

        var done = HandoverPlanner.Plan(3, waiting.Held, target, [target, target], claimsAllowed: true);
        Assert.Equal(target.SetOf(3), done.Held);
        Assert.True(done.Settled);
    }

    [Fact]
    public void Gated_claims_wait()
    {
        var target = Table(0b111);
        var plan = HandoverPlanner.Plan(3, new BucketSet(B), target, [target, target], claimsAllowed: false);
        Assert.Equal(0, plan.Held.Count);
        Assert.Equal(target.CountOf(3), plan.Pending);
    }

    [Fact]
    public void Rejects_mismatched_bucket_counts()
    {
        Assert.Throws<ArgumentException>(() => HandoverPlanner.Plan(1, new BucketSet(B + 1), Table(0b111), [], true));
    }
}
