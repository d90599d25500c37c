using L2Balance.Balancer.Net;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Net;

/// <summary>ARP answers are rate-limited per requester and in total, with time as an argument.</summary>
public class ArpAnswerLimiterTests
{
    private static readonly MacAddress Router = MacAddress.Parse("02:00:00:00:00:fe");

    [Fact]
    public void TokenBucket_Burst_IsGivenAtOnceThenTheRate()
    {
        var bucket = default(TokenBucket);
        var t = TimeSpan.FromSeconds(5);
        Assert.All(Enumerable.Range(0, 3), _ => Assert.True(bucket.TryTake(t, rate: 2, burst: 3)));
        Assert.False(bucket.TryTake(t, 2, 3));
        Assert.False(bucket.TryTake(t + TimeSpan.FromMilliseconds(400), 2, 3));
        Assert.True(bucket.TryTake(t + TimeSpan.FromMilliseconds(500), 2, 3));
        Assert.False(bucket.TryTake(t + TimeSpan.FromMilliseconds(500), 2, 3));
        // Saved up to the burst, never beyond it.
        var later = t + TimeSpan.FromHours(1);
        Assert.Equal(3, Enumerable.Range(0, 10).Count(_ => bucket.TryTake(later, 2, 3)));
    }

    [Fact]
    public void Check_OneRequesterFlooding_GetsItsBurstThenItsRate()
    {
        var limiter = new ArpAnswerLimiter();
        var t = TimeSpan.FromSeconds(1);
        var answered = Enumerable.Range(0, 1000).Count(_ => limiter.Check(Router, t) == ArpLimit.None);
        Assert.Equal((int)ArpAnswerLimiter.RequesterBurst, answered);
        Assert.Equal(ArpLimit.Requester, limiter.Check(Router, t));

        // Over the next second, one request a millisecond: the rate's worth is answered.
        answered = Enumerable.Range(1, 1000).Count(ms => limiter.Check(Router, t + TimeSpan.FromMilliseconds(ms)) == ArpLimit.None);
        Assert.InRange(answered, (int)ArpAnswerLimiter.RequesterRate - 1, (int)ArpAnswerLimiter.RequesterRate + 1);
    }

    [Fact]
    public void Check_HonestNeighbourOncePerSecond_IsAlwaysAnswered()
    {
        var limiter = new ArpAnswerLimiter();
        Assert.All(Enumerable.Range(0, 600), s => Assert.Equal(ArpLimit.None, limiter.Check(Router, TimeSpan.FromSeconds(s))));
    }

    [Fact]
    public void Check_ManyForgedRequesters_AreCappedByTheTotalAndAFloodingOneLeavesOthersTheirShare()
    {
        var limiter = new ArpAnswerLimiter();
        var t = TimeSpan.FromSeconds(1);
        var forged = Enumerable.Range(0, 5000).Select(i => new MacAddress(0x0200_0001_0000UL + (ulong)i)).ToArray();
        var answered = forged.Count(mac => limiter.Check(mac, t) == ArpLimit.None);
        Assert.Equal((int)ArpAnswerLimiter.TotalBurst, answered);
        Assert.Equal(ArpLimit.Total, limiter.Check(MacAddress.Parse("02:00:00:00:00:01"), t));

        // A second later the total budget is back (at its rate) for a requester that was not flooding.
        Assert.Equal(ArpLimit.None, limiter.Check(Router, t + TimeSpan.FromSeconds(1)));
    }
}
