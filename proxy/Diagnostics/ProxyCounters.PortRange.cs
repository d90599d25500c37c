namespace L2Balance.Proxy.Diagnostics;

/// <summary>What a socket in the port range was for: the label of the exhaustion counter.</summary>
public enum PortRangeUse
{
    /// <summary>An outgoing TCP connection (single-IP mode).</summary>
    Connect,
    /// <summary>A BIND listener.</summary>
    Bind,
    /// <summary>A UDP relay's client-facing socket.</summary>
    UdpRelay,
    /// <summary>A UDP relay's target-facing socket (single-IP mode).</summary>
    UdpOutbound,
}

/// <summary>The port range (docs/design.md#single-ip-mode): ports held now, and requests the range could not serve.</summary>
public sealed partial class ProxyCounters
{
    private static readonly (PortRangeUse Use, string Label)[] PortRangeLabels =
        [(PortRangeUse.Connect, "connect"), (PortRangeUse.Bind, "bind"), (PortRangeUse.UdpRelay, "udp_relay"), (PortRangeUse.UdpOutbound, "udp_outbound")];

    private readonly long[] _portRangeExhausted = new long[Enum.GetValues<PortRangeUse>().Length];
    private long _portRangeInUse;

    /// <summary>The range label of the gauge (the proxy sets it from its options; "none" without a range).</summary>
    public string PortRangeLabel { get; set; } = "none";

    /// <summary>Sockets this process holds now with a local port from the port range.</summary>
    public long PortRangeInUse => Interlocked.Read(ref _portRangeInUse);

    /// <summary>Requests refused because no port of the range was free for them, by use.</summary>
    public long PortRangeExhausted(PortRangeUse use) => Interlocked.Read(ref _portRangeExhausted[(int)use]);

    public void PortRangeTaken() => Interlocked.Increment(ref _portRangeInUse);

    public void PortRangeReleased() => Interlocked.Decrement(ref _portRangeInUse);

    public void PortRangeExhaustedBy(PortRangeUse use) => Interlocked.Increment(ref _portRangeExhausted[(int)use]);

    private void WritePortRangeMetrics(Common.Metrics.PrometheusWriter w)
    {
        w.Family("l2proxy_port_range_in_use", Common.Metrics.MetricType.Gauge, "Sockets held now with a local port from the port range (--port-range, the node's slice).");
        w.Sample("range", PortRangeLabel, PortRangeInUse);
        w.Family("l2proxy_port_range_exhausted_total", Common.Metrics.MetricType.Counter, "Requests refused because no port of the range was free, by what the port was for.");
        foreach (var (use, label) in PortRangeLabels)
        {
            w.Sample("reason", label, PortRangeExhausted(use));
        }
    }
}
