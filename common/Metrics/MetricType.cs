namespace L2Balance.Common.Metrics;

/// <summary>The <c># TYPE</c> of a metric family in the Prometheus text format.</summary>
public enum MetricType
{
    /// <summary>A value that only goes up (restarts at 0 with the process); its name ends in <c>_total</c>.</summary>
    Counter,

    /// <summary>A value that goes up and down (sessions open now, buckets held).</summary>
    Gauge,

    /// <summary>Observations counted in cumulative buckets, with their count and sum; see <see cref="PrometheusWriter.Histogram"/>.</summary>
    Histogram,
}
