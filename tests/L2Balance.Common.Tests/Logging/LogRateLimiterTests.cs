using L2Balance.Common.Logging;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Common.Tests.Logging;

public sealed class LogRateLimiterTests
{
    private enum Reason
    {
        BadHmac,
        Replayed,
    }

    [Fact]
    public void ShouldLog_FirstOccurrence_IsLoggedWithNothingSkipped()
    {
        var limiter = new LogRateLimiter<Reason>(TimeSpan.FromSeconds(10), new ManualTimeProvider());

        Assert.True(limiter.ShouldLog(Reason.BadHmac, out var notLogged));
        Assert.Equal(0, notLogged);
    }

    [Fact]
    public void ShouldLog_RepeatWithinInterval_IsNotLoggedButCounted()
    {
        var time = new ManualTimeProvider();
        var limiter = new LogRateLimiter<Reason>(TimeSpan.FromSeconds(10), time);
        limiter.ShouldLog(Reason.BadHmac, out _);

        time.Advance(TimeSpan.FromSeconds(9.999));
        Assert.False(limiter.ShouldLog(Reason.BadHmac, out var notLogged));
        Assert.Equal(0, notLogged);
        Assert.False(limiter.ShouldLog(Reason.BadHmac, out _));
        Assert.Equal(3, limiter.Count(Reason.BadHmac));
    }

    [Fact]
    public void ShouldLog_AfterInterval_IsLoggedWithTheCountSkippedMeanwhile()
    {
        var time = new ManualTimeProvider();
        var limiter = new LogRateLimiter<Reason>(TimeSpan.FromSeconds(10), time);
        limiter.ShouldLog(Reason.BadHmac, out _);
        limiter.ShouldLog(Reason.BadHmac, out _);
        limiter.ShouldLog(Reason.BadHmac, out _);

        time.Advance(TimeSpan.FromSeconds(10));
        Assert.True(limiter.ShouldLog(Reason.BadHmac, out var notLogged));
        Assert.Equal(2, notLogged);

        time.Advance(TimeSpan.FromSeconds(10));
        Assert.True(limiter.ShouldLog(Reason.BadHmac, out notLogged));
        Assert.Equal(0, notLogged);
    }

    [Fact]
    public void ShouldLog_OtherKey_IsLimitedSeparately()
    {
        var limiter = new LogRateLimiter<Reason>(TimeSpan.FromSeconds(10), new ManualTimeProvider());
        limiter.ShouldLog(Reason.BadHmac, out _);

        Assert.True(limiter.ShouldLog(Reason.Replayed, out _));
        Assert.Equal(1, limiter.Count(Reason.Replayed));
        Assert.Equal(0, new LogRateLimiter<Reason>(TimeSpan.FromSeconds(1)).Count(Reason.Replayed));
    }

    [Fact]
    public void ShouldLog_ManyThreadsAtOnce_LogsOnceAndCountsEveryOccurrence()
    {
        var limiter = new LogRateLimiter<Reason>(TimeSpan.FromSeconds(10), new ManualTimeProvider());
        var logged = 0;

        Parallel.For(0, 10_000, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ =>
        {
            if (limiter.ShouldLog(Reason.BadHmac, out _))
            {
                Interlocked.Increment(ref logged);
            }
        });

        Assert.Equal(1, logged);
        Assert.Equal(10_000, limiter.Count(Reason.BadHmac));
    }

    [Fact]
    public void Constructor_IntervalNotPositive_IsRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new LogRateLimiter<Reason>(TimeSpan.Zero));
    }
}
