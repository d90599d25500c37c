using L2Balance.Balancer.Config;

namespace L2Balance.Balancer.Daemon;

/// <summary>SIGHUP: the configuration read again, applied where it can be without leaving the cluster (BalancerReloadPlan).</summary>
internal sealed partial class BalancerDaemon
{
    /// <summary>
    /// Applies <paramref name="parsed"/> (the daemon's command line, parsed again, which re-reads
    /// its <c>--config</c> file): the health settings from the next probe; the rest is refused by
    /// name and keeps its running value; a configuration with errors changes nothing. Any thread.
    /// </summary>
    public void Reload(BalancerCommand parsed)
    {
        _notifier.Reloading();
        try
        {
            if (parsed is not BalancerCommand.Run run)
            {
                var errors = parsed is BalancerCommand.Invalid invalid ? invalid.Messages : ["the command line no longer runs the daemon"];
                _log.ConfigReloadFailed(string.Join("; ", errors));
                return;
            }
            var (options, kept) = BalancerReloadPlan.Plan(_health.Options, run.Options);
            if (kept.Count > 0)
            {
                _log.ConfigReloadKept(string.Join(", ", kept));
            }
            _health.Reload(options);
            // The engine is the loop's: it takes the weight on its next step.
            Volatile.Write(ref _weight, options.Weight);
            WakeLoop();
            _log.ConfigReloaded(run.Options.Source, $"{HealthProbeSpec.Describe(options.Health)} every {options.HealthInterval.TotalMilliseconds:0} ms, timeout {options.HealthTimeout.TotalMilliseconds:0} ms, fall {options.HealthFall}, rise {options.HealthRise}, weight {options.Weight}");
        }
        finally
        {
            _notifier.Reloaded();
        }
    }
}
