using L2Balance.Proxy.Rules;

namespace L2Balance.Proxy.Diagnostics;

/// <summary>The counters of the default policy (issue 13): protected destinations refused, resolved addresses not dialled.</summary>
public sealed partial class ProxyCounters
{
    private readonly long[] _destinationsRefused = new long[Enum.GetValues<DestinationClass>().Length];
    private long _resolvedAddressesSkipped;

    /// <summary>CONNECT and BIND requests refused (reply 2) and UDP datagrams dropped because their
    /// destination is of <paramref name="kind"/> and no rule names it.</summary>
    public long DestinationsRefused(DestinationClass kind) => Interlocked.Read(ref _destinationsRefused[(int)kind]);

    /// <summary>Addresses a name resolved to that were not dialled because the rules refuse them.</summary>
    public long ResolvedAddressesSkipped => Interlocked.Read(ref _resolvedAddressesSkipped);

    public void DestinationRefused(DestinationClass kind) => Interlocked.Increment(ref _destinationsRefused[(int)kind]);

    public void ResolvedAddressSkipped() => Interlocked.Increment(ref _resolvedAddressesSkipped);

    private void WritePolicyMetrics(Common.Metrics.PrometheusWriter w)
    {
        w.Family("l2proxy_protected_destinations_refused_total", Common.Metrics.MetricType.Counter,
            "CONNECT and BIND requests refused and UDP datagrams dropped: their destination is never relayed unless a rule names it, by class.");
        foreach (var kind in Enum.GetValues<DestinationClass>())
        {
            if (kind != DestinationClass.Ordinary)
            {
                w.Sample("class", kind.ToString(), DestinationsRefused(kind));
            }
        }
        w.Counter("l2proxy_resolved_addresses_skipped_total", "Addresses of a resolved name not dialled because the rules refuse them.", ResolvedAddressesSkipped);
    }
}
