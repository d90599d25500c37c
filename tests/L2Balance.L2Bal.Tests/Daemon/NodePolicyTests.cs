using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Daemon;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Health;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Daemon;

/// <summary>
/// The node policy without a network: every local state and transition with its reason,
/// conflicts and how long they last, the slice grant, what a wake-up after a gap means, and the
/// draining buckets. Time is a plain argument, as in MembershipEngineTests.
/// </summary>
public class NodePolicyTests
{
    private const int Self = 2;
    private const ulong MyIncarnation = 1_000;
    private const string Probe = "socks5://198.18.0.10:1080";
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(40);
    private static readonly TimeSpan Dead = TimeSpan.FromMilliseconds(120);
    private static readonly TimeSpan Lease = TimeSpan.FromMilliseconds(80);
    private static readonly HealthView Healthy = new(true, HealthProbeResult.Pass);
    private static readonly HealthView NotProbed = new(false, new HealthProbeResult(HealthFailure.NotProbedYet, "no probe has passed yet"));
    private static readonly HealthView NothingListens = new(false, new HealthProbeResult(HealthFailure.NothingListens, "nothing listens on 198.18.0.10:1080"));

    private static NodePolicy NewPolicy(string? probe = Probe)
    {
        var policy = new NodePolicy(Self, MyIncarnation, Interval, Dead, Lease, probe, buckets: 64);
        policy.StartListening(TimeSpan.Zero);
        return policy;
    }

    private static Advert AdvertFrom(int nodeId, ulong incarnation, int nodeCount = 3) =>
        new(10, (ushort)nodeId, (ushort)nodeCount, AdvertState.Active, incarnation, 1, 0, 0, 0, 0, AdvertFlags.None);

    private static TimeSpan Ms(double ms) => TimeSpan.FromMilliseconds(ms);

    [Fact]
    public void ChooseState_WithProbeBeforeTheFirstPass_WaitsUnhealthyForTheProbe()
    {
        var change = NewPolicy().ChooseState(AdvertState.Active, NotProbed, Ms(0));
        Assert.Equal(new LocalStateChanged(AdvertState.Unhealthy, StateReason.WaitingForFirstProbe, Detail: Probe), change);
    }

    [Fact]
    public void ChooseState_FirstPassingProbe_TurnsActiveWithHealthPassing()
    {
        var policy = NewPolicy();
        policy.ChooseState(AdvertState.Active, NotProbed, Ms(0));
        var change = policy.ChooseState(AdvertState.Unhealthy, Healthy, Ms(10));
        Assert.Equal(new LocalStateChanged(AdvertState.Active, StateReason.HealthPassing, Detail: Probe), change);
    }

    [Fact]
    public void ChooseState_ProbeFailingAfterItPassed_TurnsUnhealthyWithWhatTheProbeSaw()
    {
        var policy = NewPolicy();
        policy.ChooseState(AdvertState.Unhealthy, Healthy, Ms(0));
        var change = policy.ChooseState(AdvertState.Active, NothingListens, Ms(10));
        Assert.Equal(AdvertState.Unhealthy, change!.State);
        Assert.Equal(StateReason.HealthFailing, change.Reason);
        Assert.Equal(HealthFailure.NothingListens, change.Health);
        Assert.Equal($"{Probe}: nothing listens on 198.18.0.10:1080", change.Detail);
    }

    [Fact]
    public void ChooseState_ProbePassingAgain_TurnsActiveWithHealthPassingAgain()
    {
        var policy = NewPolicy();
        policy.ChooseState(AdvertState.Unhealthy, Healthy, Ms(0));
        policy.ChooseState(AdvertState.Active, NothingListens, Ms(10));
        Assert.Equal(StateReason.HealthPassingAgain, policy.ChooseState(AdvertState.Unhealthy, Healthy, Ms(20))!.Reason);
    }

    [Fact]
    public void ChooseState_UnchangedInputs_DecideNoChange()
    {
        var policy = NewPolicy();
        Assert.Null(policy.ChooseState(AdvertState.Active, Healthy, Ms(0)));
        Assert.Null(policy.ChooseState(AdvertState.Unhealthy, NothingListens, Ms(0)));
        policy.DrainRequested = true;
        Assert.Null(policy.ChooseState(AdvertState.Draining, NothingListens, Ms(0)));
    }

    [Fact]
    public void ChooseState_DrainRequested_WinsOverHealthAndConflictAndUndrainReturns()
    {
        var policy = NewPolicy();
        policy.ChooseState(AdvertState.Unhealthy, Healthy, Ms(0));
        policy.OnAdvertRejected(AdvertRejection.FromSelf, AdvertFrom(Self, MyIncarnation - 1), MacAddress.Parse("02:00:00:00:00:01"), Ms(5));
        policy.DrainRequested = true;
        Assert.Equal(new LocalStateChanged(AdvertState.Draining, StateReason.DrainRequested), policy.ChooseState(AdvertState.Active, NothingListens, Ms(10)));
        policy.DrainRequested = false;
        // Back from the drain: the conflict still holds, so the node yields for it.
        Assert.Equal(StateReason.Conflict, policy.ChooseState(AdvertState.Draining, Healthy, Ms(20))!.Reason);
        policy.DrainRequested = true;
        policy.ChooseState(AdvertState.Unhealthy, Healthy, Ms(30));
        policy.DrainRequested = false;
        // After the conflict's dead time: undrain makes it active again.
        Assert.Equal(new LocalStateChanged(AdvertState.Active, StateReason.UndrainRequested, Detail: Probe),
            policy.ChooseState(AdvertState.Draining, Healthy, Ms(5) + Dead + Ms(1)));
    }

    [Fact]
    public void ChooseState_UndrainWhileUnhealthy_TurnsUnhealthyForTheProbe()
    {
        var policy = NewPolicy();
        policy.ChooseState(AdvertState.Unhealthy, Healthy, Ms(0));
        policy.DrainRequested = true;
        policy.ChooseState(AdvertState.Active, Healthy, Ms(10));
        policy.DrainRequested = false;
        Assert.Equal(StateReason.HealthFailing, policy.ChooseState(AdvertState.Draining, NothingListens, Ms(20))!.Reason);
    }

    [Fact]
    public void OnAdvertRejected_SameIdFromAnOlderNode_YieldsForADeadTimeThenConflictEnds()
    {
        var policy = NewPolicy();
        policy.ChooseState(AdvertState.Unhealthy, Healthy, Ms(0));
        policy.OnAdvertRejected(AdvertRejection.FromSelf, AdvertFrom(Self, MyIncarnation - 1), MacAddress.Parse("02:00:00:00:00:01"), Ms(10));
        var change = policy.ChooseState(AdvertState.Active, Healthy, Ms(10));
        Assert.Equal(AdvertState.Unhealthy, change!.State);
        Assert.Equal(StateReason.Conflict, change.Reason);
        Assert.Equal(ConflictKind.DuplicateNodeId, change.Conflict);
        Assert.Equal(Self, change.Peer);
        Assert.Contains("02:00:00:00:00:01", change.Detail, StringComparison.Ordinal);
        Assert.NotNull(policy.Conflict(Ms(10) + Dead));
        Assert.Null(policy.Conflict(Ms(10) + Dead + Ms(1)));
        Assert.Equal(new LocalStateChanged(AdvertState.Active, StateReason.ConflictEnded, Detail: Probe),
            policy.ChooseState(AdvertState.Unhealthy, Healthy, Ms(10) + Dead + Ms(1)));
    }

    [Fact]
    public void OnAdvertRejected_ConflictsFromAYoungerNode_AreIgnored()
    {
        var policy = NewPolicy();
        policy.OnAdvertRejected(AdvertRejection.FromSelf, AdvertFrom(Self, MyIncarnation + 1), MacAddress.Parse("02:00:00:00:00:01"), Ms(10));
        policy.OnAdvertRejected(AdvertRejection.ConfigMismatch, AdvertFrom(3, MyIncarnation + 1), MacAddress.Parse("02:00:00:00:00:03"), Ms(10));
        Assert.Null(policy.Conflict(Ms(10)));
    }

    [Fact]
    public void OnAdvertRejected_OtherSettingsFromAnOlderNode_YieldWithThatNodesId()
    {
        var policy = NewPolicy();
        policy.OnAdvertRejected(AdvertRejection.ConfigMismatch, AdvertFrom(3, MyIncarnation - 1, nodeCount: 4), MacAddress.Parse("02:00:00:00:00:03"), Ms(10));
        var conflict = policy.Conflict(Ms(10));
        Assert.Equal(ConflictKind.OtherSettings, conflict!.Kind);
        Assert.Equal(3, conflict.Peer);
        Assert.Contains("node count 4", conflict.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void OnAdvertRejected_BadHmacBeforeAnyValidAdvert_YieldsAsUnverifiedKey()
    {
        var policy = NewPolicy();
        policy.OnAdvertRejected(AdvertRejection.BadHmac, AdvertFrom(1, 1), MacAddress.Parse("02:00:00:00:00:01"), Ms(10));
        Assert.Equal(ConflictKind.UnverifiedKey, policy.Conflict(Ms(20))!.Kind);
        // One valid advert ends it at once: the node has a peer with its key.
        policy.OnAdvertAccepted();
        Assert.Null(policy.Conflict(Ms(20)));
    }

    [Fact]
    public void OnAdvertRejected_BadHmacAfterAValidAdvert_ChangesNothing()
    {
        var policy = NewPolicy();
        policy.OnAdvertAccepted();
        policy.OnAdvertRejected(AdvertRejection.BadHmac, AdvertFrom(1, 1), MacAddress.Parse("02:00:00:00:00:01"), Ms(10));
        Assert.Null(policy.Conflict(Ms(10)));
        Assert.Equal(TimeSpan.MaxValue, policy.ConflictEnds(Ms(10)));
    }

    [Fact]
    public void OnAdvertRejected_OtherReasons_NeverMakeTheNodeYield()
    {
        var policy = NewPolicy();
        foreach (var reason in Enum.GetValues<AdvertRejection>().Except([AdvertRejection.FromSelf, AdvertRejection.ConfigMismatch, AdvertRejection.BadHmac, AdvertRejection.UnknownKey]))
        {
            policy.OnAdvertRejected(reason, AdvertFrom(Self, 1), MacAddress.Parse("02:00:00:00:00:01"), Ms(10));
            Assert.Null(policy.Conflict(Ms(10)));
        }
    }

    [Fact]
    public void ConflictEnds_AfterAConflictingAdvert_IsOneTickPastItsDeadTime()
    {
        var policy = NewPolicy();
        Assert.Equal(TimeSpan.MaxValue, policy.ConflictEnds(Ms(0)));
        policy.OnAdvertRejected(AdvertRejection.FromSelf, AdvertFrom(Self, 1), MacAddress.Parse("02:00:00:00:00:01"), Ms(10));
        Assert.Equal(Ms(10) + Dead + TimeSpan.FromTicks(1), policy.ConflictEnds(Ms(20)));
        Assert.Equal(TimeSpan.MaxValue, policy.ConflictEnds(Ms(10) + Dead + TimeSpan.FromTicks(1)));
    }

    [Fact]
    public void GrantsSlice_ListeningAndConflicts_GrantOnlyAfterADeadTimeOfListeningWithoutConflict()
    {
        var policy = new NodePolicy(Self, MyIncarnation, Interval, Dead, Lease, Probe, buckets: 64);
        Assert.False(policy.GrantsSlice(Ms(1000)));
        policy.StartListening(Ms(100));
        Assert.False(policy.GrantsSlice(Ms(100) + Dead - Ms(1)));
        Assert.True(policy.GrantsSlice(Ms(100) + Dead));
        policy.OnAdvertRejected(AdvertRejection.ConfigMismatch, AdvertFrom(1, 1), MacAddress.Parse("02:00:00:00:00:01"), Ms(300));
        Assert.False(policy.GrantsSlice(Ms(300)));
        Assert.True(policy.GrantsSlice(Ms(300) + Dead + Ms(1)));
    }

    [Fact]
    public void Wake_GapBeyondTheLongestSleep_IsUnheardTimeAndBeyondTheLeaseAStall()
    {
        var policy = NewPolicy();
        Assert.Equal(new WakeVerdict(Ms(-30), Stalled: false, LinkNews.Unchanged), policy.Wake(Ms(10), carrier: true));
        Assert.Equal(new WakeVerdict(Ms(40), Stalled: false, LinkNews.Unchanged), policy.Wake(Lease, carrier: true));
        Assert.Equal(new WakeVerdict(Ms(41), Stalled: true, LinkNews.Unchanged), policy.Wake(Lease + Ms(1), carrier: true));
    }

    [Fact]
    public void Wake_CarrierLossAndReturn_AreReportedOnceEach()
    {
        var policy = NewPolicy();
        var news = new[] { true, false, false, true, true }.Select(up => policy.Wake(Interval, up).Link);
        Assert.Equal([LinkNews.Unchanged, LinkNews.WentDown, LinkNews.StillDown, LinkNews.CameUp, LinkNews.Unchanged], news);
    }

    [Fact]
    public void DrainSet_ReleasedBucketsDrain_AndHeldAgainStopDraining()
    {
        var drains = new DrainSet(8);
        var before = Set(8, 0, 1, 2, 3);
        Assert.True(drains.Follow(before, Set(8, 0, 1), Ms(10)));
        Assert.Equal(2, drains.Count);
        Assert.True(drains.Contains(2) && drains.Contains(3));
        Assert.Equal(Set(8, 0, 1, 2, 3), drains.AcceptedWith(Set(8, 0, 1)));
        Assert.False(drains.Follow(Set(8, 0, 1), Set(8, 0, 1), Ms(20)));
        Assert.True(drains.Follow(Set(8, 0, 1), Set(8, 0, 1, 3), Ms(30)));
        Assert.Equal(1, drains.Count);
        Assert.True(drains.Contains(2));
    }

    [Fact]
    public void DrainSet_Prune_EndsOnlyBucketsWithoutFlowsThatDrainedBeforeTheReadBegan()
    {
        var drains = new DrainSet(8);
        drains.Follow(Set(8, 0, 1, 2), Set(8), Ms(10));
        drains.Follow(Set(8, 5), Set(8), Ms(50));
        // Read began at 40 ms: bucket 1 still has a flow; 5 was released after the read began.
        Assert.Equal(2, drains.Prune(Ms(40), new Dictionary<int, int> { [1] = 3 }));
        Assert.Equal(2, drains.Count);
        Assert.True(drains.Contains(1) && drains.Contains(5));
        Assert.Equal(2, drains.Prune(Ms(60), new Dictionary<int, int>()));
        Assert.Equal(0, drains.Count);
    }

    private static BucketSet Set(int capacity, params int[] buckets)
    {
        var set = new BucketSet(capacity);
        foreach (var b in buckets)
        {
            set.Add(b);
        }
        return set;
    }
}
