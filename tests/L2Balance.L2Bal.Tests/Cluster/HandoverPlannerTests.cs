using L2Balance.Balancer.Cluster;
using Xunit;

namespace L2Balance.L2Bal.Tests.Cluster;

public class HandoverPlannerTests
{
    private const int B = 64;

    private static OwnershipTable Table(ulong active) => Ownership.Compute(MembershipView.FromActiveMask(3, B, active));

    [Fact]
    public void Plan_ClaimsGated_StillReleasesAtOnce()
    {
        // Node 1 covered node 3's buckets; node 3 is back: release them without waiting.
        var held = Table(0b011).SetOf(1);
        var plan = HandoverPlanner.Plan(1, held, Table(0b111), [new(2, Table(0b011)), new(3, Table(0b111))], claimsAllowed: false);
        Assert.Equal(Table(0b111).SetOf(1), plan.Held);
        Assert.Equal(held.Count - Table(0b111).CountOf(1), plan.Released);
        Assert.Equal(0, plan.Claimed);
        Assert.True(plan.Settled);
    }

    [Fact]
    public void Plan_PeerDead_TakesOverImmediately()
    {
        var plan = HandoverPlanner.Plan(1, Table(0b111).SetOf(1), Table(0b011), [new(2, Table(0b011))], claimsAllowed: true);
        Assert.Equal(Table(0b011).SetOf(1), plan.Held);
        Assert.Equal(Table(0b011).CountOf(1) - Table(0b111).CountOf(1), plan.Claimed);
    }

    [Fact]
    public void Plan_Joiner_WaitsUntilTheHolderAdvertisesTheRelease()
    {
        var target = Table(0b111);
        // Node 3 returns; node 1 still advertises the view without it, node 2 already has it.
        // Node 3 may claim only those of its buckets that node 1's stale view gives to node 2
        // (node 2's current view no longer does): those node 1 may hold must wait.
        var stale = Table(0b011);
        var waiting = HandoverPlanner.Plan(3, new BucketSet(B), target, [new(1, stale), new(2, target)], claimsAllowed: true);
        Assert.Equal(target.SetOf(3).Buckets().Where(b => stale.Owner(b) == 2), waiting.Held.Buckets());
        Assert.False(waiting.Held.Overlaps(stale.SetOf(1)));
        Assert.Equal(target.CountOf(3) - waiting.Held.Count, waiting.Pending);
        Assert.True(waiting.Held.Count > 0 && waiting.Pending > 0);
        Assert.False(waiting.Settled);

        var done = HandoverPlanner.Plan(3, waiting.Held, target, [new(1, target), new(2, target)], claimsAllowed: true);
        Assert.Equal(target.SetOf(3), done.Held);
        Assert.True(done.Settled);
    }

    [Fact]
    public void Plan_ClaimsGated_Wait()
    {
        var target = Table(0b111);
        var plan = HandoverPlanner.Plan(3, new BucketSet(B), target, [new(1, target), new(2, target)], claimsAllowed: false);
        Assert.Equal(0, plan.Held.Count);
        Assert.Equal(target.CountOf(3), plan.Pending);
    }

    [Fact]
    public void Plan_MismatchedBucketCounts_AreRejected()
    {
        Assert.Throws<ArgumentException>(() => HandoverPlanner.Plan(1, new BucketSet(B + 1), Table(0b111), [], true));
    }
}
