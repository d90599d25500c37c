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
    public void Starts_unhealthy_and_turns_healthy_at_the_first_passing_probe()
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
    public void Unhealthy_after_fall_failures_in_a_row_only()
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
    public void Healthy_again_after_rise_successes_in_a_row_only()
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
    public void A_refused_connect_is_unhealthy_at_once_other_failures_need_fall()
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
    public void The_full_probe_runs_once_in_N_checks_while_healthy_and_always_otherwise()
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
