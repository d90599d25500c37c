using L2Balance.Balancer.Daemon;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Net;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Daemon;

/// <summary>What the loop does about spoofing: record at most once per kind per 10 s, re-announce at most once per 100 ms, always last.</summary>
public class SpoofWatchTests
{
    private static readonly MacAddress Attacker = MacAddress.Parse("02:00:00:00:00:15");

    private static long[] Totals(long claimed, long fromClusterMac = 0) => [0, claimed, fromClusterMac];

    private static MacAddress[] Offenders => [default, Attacker, MacAddress.Parse("02:c1:c6:12:00:0a")];

    private static TimeSpan Ms(double ms) => TimeSpan.FromMilliseconds(ms);

    [Fact]
    public void Observe_NothingNew_RecordsNothingAndAnnouncesNothing()
    {
        var watch = new SpoofWatch();
        Assert.Empty(watch.Observe(Totals(0), Offenders, Ms(1000)));
        Assert.False(watch.ReannounceDue(Ms(1000)));
        Assert.Equal(TimeSpan.MaxValue, watch.NextDeadline);
    }

    [Fact]
    public void Observe_FirstClaim_IsRecordedAtOnceWithItsMacAndAnsweredAtOnce()
    {
        var watch = new SpoofWatch();
        var seen = Assert.Single(watch.Observe(Totals(3), Offenders, Ms(1000)));
        Assert.Equal(new SpoofSeen(SpoofKind.VipClaimed, "02:00:00:00:00:15", 3), seen);
        Assert.True(watch.ReannounceDue(Ms(1000)));
    }

    [Fact]
    public void Observe_OngoingClaim_IsRecordedOncePerTenSeconds()
    {
        var watch = new SpoofWatch();
        var recorded = 0;
        for (var ms = 0; ms < 25_000; ms += 50)
        {
            recorded += watch.Observe(Totals(1 + (ms / 50)), Offenders, Ms(1000 + ms)).Count;
        }
        Assert.Equal(3, recorded);
    }

    [Fact]
    public void Reannounce_UnderAClaimEveryMillisecond_IsAtMostOncePerGapAndTheLastWordIsOurs()
    {
        var watch = new SpoofWatch();
        var announced = new List<TimeSpan>();
        var t = Ms(1000);
        for (var i = 1; i <= 1000; i++, t += Ms(1))
        {
            watch.Observe(Totals(i), Offenders, t);
            if (watch.ReannounceDue(t))
            {
                watch.Announced(t);
                announced.Add(t);
            }
        }
        Assert.InRange(announced.Count, 9, 11);
        Assert.All(announced.Zip(announced.Skip(1)), p => Assert.True(p.Second - p.First >= SpoofWatch.ReannounceGap));

        // The claims stopped; the last one still waits for its answer, due one gap after the last announcement.
        Assert.True(watch.NextDeadline <= announced[^1] + SpoofWatch.ReannounceGap);
        Assert.True(watch.ReannounceDue(watch.NextDeadline));
        watch.Announced(watch.NextDeadline);
        Assert.Equal(TimeSpan.MaxValue, watch.NextDeadline);
    }

    [Fact]
    public void Announced_ForAnotherReason_CountsTowardTheGap()
    {
        var watch = new SpoofWatch();
        watch.Announced(Ms(1000));
        watch.Observe(Totals(1), Offenders, Ms(1010));
        Assert.False(watch.ReannounceDue(Ms(1010)));
        Assert.Equal(Ms(1100), watch.NextDeadline);
        Assert.True(watch.ReannounceDue(Ms(1100)));
    }
}
