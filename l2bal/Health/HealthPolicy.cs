namespace L2Balance.Balancer.Health;

/// <summary>The local service's health as the node advertises it.</summary>
internal enum HealthState
{
    Healthy,
    Unhealthy,
}

/// <summary>
/// Health policy(results) → state (STYLE 7, YARP IActiveHealthCheckPolicy): unhealthy after
/// <c>fall</c> consecutive failures, healthy again after <c>rise</c> consecutive successes
/// (keepalived's fall/rise), so one lost probe does not move buckets and a flapping service
/// does not flap them.
/// </summary>
internal sealed class HealthPolicy(int fall, int rise)
{
    private int _failures;
    private int _successes;

    public HealthState State { get; private set; } = HealthState.Healthy;

    /// <summary>The last probe's failure reason, for logs and status.</summary>
    public string? LastFailure { get; private set; }

    /// <summary>Feeds one probe result; returns true when the state changed.</summary>
    public bool Record(bool success, string? failure = null)
    {
        if (success)
        {
            _failures = 0;
            _successes++;
            if (State == HealthState.Unhealthy && _successes >= rise)
            {
                State = HealthState.Healthy;
                return true;
            }
            return false;
        }
        LastFailure = failure;
        _successes = 0;
        _failures++;
        if (State == HealthState.Healthy && _failures >= fall)
        {
            State = HealthState.Unhealthy;
            return true;
        }
        return false;
    }
}
