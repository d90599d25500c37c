namespace L2Balance.Balancer.Config;

/// <summary>
/// What SIGHUP may change in a running node: the health settings (probe, interval, timeout, fall,
/// rise), which no peer sees and which move buckets only through the verdict they produce. Every
/// other setting shapes the cluster (VIP, buckets, seed, timing, node id: the config digest peers
/// check), the kernel filter, the key or the sockets, and needs a restart: its running value is
/// kept and named. Turning the probe on or off needs a restart too (a node without a probe has no
/// probe thread).
/// </summary>
internal static class BalancerReloadPlan
{
    /// <summary>The options after a reload from <paramref name="running"/> to <paramref name="read"/>, and the settings kept because they need a restart.</summary>
    public static (BalancerOptions Options, IReadOnlyList<string> NeedRestart) Plan(BalancerOptions running, BalancerOptions read)
    {
        ArgumentNullException.ThrowIfNull(running);
        ArgumentNullException.ThrowIfNull(read);
        var kept = new List<string>();
        (string Name, object? Running, object? Read)[] restartOnly =
        [
            ("interface", running.Interface, read.Interface), ("vip", running.Vip, read.Vip), ("vip prefix", running.VipPrefix, read.VipPrefix),
            ("node-id", running.NodeId, read.NodeId), ("node-count", running.NodeCount, read.NodeCount), ("key-file", running.KeyFile, read.KeyFile),
            ("buckets", running.Buckets, read.Buckets), ("seed", running.Seed, read.Seed), ("cluster-id", running.ClusterId, read.ClusterId),
            ("advert-interval", running.AdvertInterval, read.AdvertInterval), ("dead-after", running.DeadAfterMisses, read.DeadAfterMisses),
            ("mac-mode", running.MacMode, read.MacMode), ("service", string.Join(",", running.Services), string.Join(",", read.Services)),
            ("control", running.ControlPath, read.ControlPath), ("metrics", running.Metrics, read.Metrics),
        ];
        foreach (var (name, was, now) in restartOnly)
        {
            if (!Equals(was, now))
            {
                kept.Add(name);
            }
        }
        var health = read.Health;
        if ((running.Health.Kind == HealthProbeKind.None) != (read.Health.Kind == HealthProbeKind.None))
        {
            kept.Add("health (turning the probe on or off)");
            health = running.Health;
        }
        var options = running with
        {
            Health = health,
            HealthInterval = read.HealthInterval,
            HealthTimeout = read.HealthTimeout,
            HealthFall = read.HealthFall,
            HealthRise = read.HealthRise,
        };
        return (options, kept);
    }
}
