using L2Balance.Balancer.Diagnostics;

namespace L2Balance.Balancer.Health;

/// <summary>The local service's health as the node advertises it.</summary>
internal enum HealthState
{
    Healthy,
    Unhealthy,
}

/// <summary>
/// Health policy(results) → state (docs/conventions.md §7, YARP IActiveHealthCheckPolicy): unhealthy after
/// <c>fall</c> consecutive failures, healthy again after <c>rise</c> consecutive successes
/// (keepalived's fall/rise), so one lost probe does not move buckets and a flapping service
/// does not flap them. A refused connect is the exception: nothing listens, so the service is
/// gone (killed, crashed, not yet restarted), and waiting for more refusals would only leave
/// the node's clients refused for longer; it turns the node unhealthy at once.
/// It starts unhealthy and turns healthy at the first passing probe: a node
/// takes no clients before its service answers (a proxy started after the daemon).
/// </summary>
internal sealed class HealthPolicy(int fall, int rise)
{
    private int _failures;
    private int _successes;
    private bool _passedOnce;

    public HealthState State { get; private set; } = HealthState.Unhealthy;

    /// <summary>A policy with new thresholds that keeps <paramref name="current"/>'s verdict and last failure (a reload moves no bucket by itself).</summary>
    public static HealthPolicy Continuing(HealthPolicy current, int fall, int rise)
    {
        ArgumentNullException.ThrowIfNull(current);
        return new HealthPolicy(fall, rise) { State = current.State, LastFailure = current.LastFailure, _passedOnce = current._passedOnce };
    }

    /// <summary>The last failed probe's outcome, for logs and status.</summary>
    public HealthProbeResult LastFailure { get; private set; } = new(HealthFailure.NotProbedYet, "no probe has passed yet");

    /// <summary>
    /// Whether the next check must be the full probe rather than the listen check
    /// (<see cref="ListenCheck"/>), after <paramref name="listenChecksSinceFull"/> listen checks:
    /// always while the service is unhealthy or has failed a probe since it last passed (rise and
    /// fall count full probes only, at the full rate), else once in <paramref name="fullEvery"/> checks.
    /// </summary>
    public bool WantsFullProbe(int listenChecksSinceFull, int fullEvery) =>
        State != HealthState.Healthy || _failures > 0 || listenChecksSinceFull + 1 >= fullEvery;

    /// <summary>
    /// Feeds one probe result; returns true when the state changed. A failure in which nothing
    /// listens turns a healthy service unhealthy at once, whatever <c>fall</c>.
    /// </summary>
    public bool Record(HealthProbeResult result)
    {
        if (result.Passed)
        {
            _failures = 0;
            _successes++;
            if (State == HealthState.Unhealthy && (_successes >= rise || !_passedOnce))
            {
                _passedOnce = true;
                State = HealthState.Healthy;
                return true;
            }
            _passedOnce = true;
            return false;
        }
        LastFailure = result;
        _successes = 0;
        _failures++;
        if (State == HealthState.Healthy && (_failures >= fall || result.NothingListens))
        {
            State = HealthState.Unhealthy;
            return true;
        }
        return false;
    }
}
