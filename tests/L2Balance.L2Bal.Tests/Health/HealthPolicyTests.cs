using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Health;
using Xunit;

namespace L2Balance.L2Bal.Tests.Health;

public class HealthPolicyTests
{
    private static readonly HealthProbeResult Pass = HealthProbeResult.Pass;

    /// <summary>A failure that is not "nothing listens" (a timeout or a wrong answer): it needs fall in a row.</summary>
    private static HealthProbeResult Fail(string detail) => new(HealthFailure.Timeout, detail);

    [Fact]
    public void Health_FirstPassingProbe_TurnsHealthy()
    {
        var policy = new HealthPolicy(fall: 3, rise: 5);
        Assert.Equal(HealthState.Unhealthy, policy.State);
        Assert.False(policy.Record(Fail("refused")));
        Assert.False(policy.Record(Fail("refused")));
        Assert.Equal(HealthState.Unhealthy, policy.State);
        Assert.True(policy.Record(Pass));
        Assert.Equal(HealthState.Healthy, policy.State);
    }

    [Fact]
    public void Health_FallFailuresInARow_TurnUnhealthy()
    {
        var policy = new HealthPolicy(fall: 3, rise: 2);
        Assert.True(policy.Record(Pass));
        Assert.False(policy.Record(Fail("refused")));
        Assert.False(policy.Record(Fail("refused")));
        Assert.False(policy.Record(Pass));
        Assert.False(policy.Record(Fail("refused")));
        Assert.False(policy.Record(Fail("refused")));
        Assert.Equal(HealthState.Healthy, policy.State);
        Assert.True(policy.Record(Fail("timeout")));
        Assert.Equal(HealthState.Unhealthy, policy.State);
        Assert.Equal("timeout", policy.LastFailure.Detail);
    }

    [Fact]
    public void Health_RiseSuccessesInARow_TurnHealthyAgain()
    {
        var policy = new HealthPolicy(fall: 1, rise: 3);
        Assert.True(policy.Record(Pass));
        Assert.True(policy.Record(Fail("refused")));
        Assert.False(policy.Record(Pass));
        Assert.False(policy.Record(Pass));
        Assert.False(policy.Record(Fail("refused")));
        Assert.False(policy.Record(Pass));
        Assert.False(policy.Record(Pass));
        Assert.True(policy.Record(Pass));
        Assert.Equal(HealthState.Healthy, policy.State);
    }

    [Fact]
    public void Health_RefusedConnect_IsUnhealthyAtOnce()
    {
        var policy = new HealthPolicy(fall: 3, rise: 2);
        Assert.True(policy.Record(Pass));
        Assert.False(policy.Record(Fail("no answer within 500 ms")));
        Assert.Equal(HealthState.Healthy, policy.State);
        Assert.True(policy.Record(new HealthProbeResult(HealthFailure.NothingListens, "connection refused: nothing listens on 198.18.0.10:1080")));
        Assert.Equal(HealthState.Unhealthy, policy.State);
        Assert.Equal("connection refused: nothing listens on 198.18.0.10:1080", policy.LastFailure.Detail);

        // Back after rise good probes, as for any failure; then a lone timeout again does not count.
        Assert.False(policy.Record(Pass));
        Assert.True(policy.Record(Pass));
        Assert.False(policy.Record(Fail("unexpected SOCKS5 method selection 05 ff")));
        Assert.Equal(HealthState.Healthy, policy.State);
    }

    [Fact]
    public void FullProbe_WhileHealthyOrNot_RunsOnceInNChecksOrAlways()
    {
        var policy = new HealthPolicy(fall: 3, rise: 2);
        // Unhealthy (at start): every check is the full probe, so rise counts at the full rate.
        Assert.True(policy.WantsFullProbe(3, 5));
        policy.Record(Pass);
        // Healthy: listen checks in between, the full probe every 5th.
        Assert.Equal([false, false, false, false, true], Enumerable.Range(0, 5).Select(i => policy.WantsFullProbe(i, 5)));
        // One failed full probe (a timeout): full probes until one passes, so fall counts them in a row.
        policy.Record(Fail("no answer within 500 ms"));
        Assert.Equal(HealthState.Healthy, policy.State);
        Assert.True(policy.WantsFullProbe(0, 5));
        policy.Record(Pass);
        Assert.False(policy.WantsFullProbe(0, 5));
        // Every check is the full one when N is 1.
        Assert.True(policy.WantsFullProbe(0, 1));
    }
}
