using L2Balance.Common.CommandLine;

namespace L2Balance.Balancer.Config;

/// <summary>
/// What SIGHUP may change in a running node: the health settings (probe, interval, timeout, fall,
/// rise), which no peer sees and which move buckets only through the verdict they produce. Every
/// other setting shapes the cluster (VIP, buckets, seed, timing, node id: the config digest peers
/// check), the kernel filter, the key or the sockets, and needs a restart: its running value is
/// kept and named. Turning the probe on or off needs a restart too (a node without a probe has no
/// probe thread). The weight (--weight) may change too: it is a view change, whose buckets move by
/// hand-back like any other (docs/design.md#weights).
/// </summary>
internal static class BalancerReloadPlan
{
    /// <summary>The options after a reload from <paramref name="running"/> to <paramref name="read"/>, and the settings kept because they need a restart.</summary>
    public static (BalancerOptions Options, IReadOnlyList<string> NeedRestart) Plan(BalancerOptions running, BalancerOptions read)
    {
        ArgumentNullException.ThrowIfNull(running);
        ArgumentNullException.ThrowIfNull(read);
        var restart = new RestartOnlySettings()
            .Check("interface", running.Interface, read.Interface).Check("vip", running.Vip, read.Vip).Check("vip prefix", running.VipPrefix, read.VipPrefix)
            .Check("ipv6 vip", running.Vip6, read.Vip6).Check("ipv6 vip prefix", running.Vip6Prefix, read.Vip6Prefix)
            .Check("node-id", running.NodeId, read.NodeId).Check("node-count", running.NodeCount, read.NodeCount).Check("key-file", running.KeyFile, read.KeyFile)
            .Check("previous-key-file", running.PreviousKeyFile, read.PreviousKeyFile).Check("advert-version", running.AdvertVersion, read.AdvertVersion)
            .Check("buckets", running.Buckets, read.Buckets).Check("seed", running.Seed, read.Seed).Check("cluster-id", running.ClusterId, read.ClusterId)
            .Check("advert-interval", running.AdvertInterval, read.AdvertInterval).Check("dead-after", running.DeadAfterMisses, read.DeadAfterMisses)
            .Check("mac-mode", running.MacMode, read.MacMode).CheckAll("service", running.Services, read.Services)
            .CheckAll("affinity", running.Affinity, read.Affinity)
            .Check("control", running.ControlPath, read.ControlPath).Check("control-group", running.ControlGroup, read.ControlGroup).Check("metrics", running.Metrics, read.Metrics)
            .Check("migrate", running.Migration, read.Migration);
        // Turning the probe on or off needs a restart (the probe thread); changing it does not.
        var probeSwitched = (running.Health.Count == 0) != (read.Health.Count == 0);
        restart.Check("health (turning the probe on or off)", false, probeSwitched);
        var options = running with
        {
            Health = probeSwitched || running.Health.SequenceEqual(read.Health) ? running.Health : read.Health,
            HealthInterval = read.HealthInterval,
            HealthTimeout = read.HealthTimeout,
            HealthFall = read.HealthFall,
            HealthRise = read.HealthRise,
            Weight = read.Weight,
        };
        return (options, restart.Changed);
    }
}
