using System.Net;
using System.Text;
using L2Balance.Common.Metrics;

namespace L2Balance.Proxy.Diagnostics;

/// <summary><c>--metrics ADDR:PORT</c>: the shared metrics endpoint serving the proxy's counters.</summary>
public static class ProxyMetrics
{
    /// <summary>
    /// Listens on <paramref name="endPoint"/> and serves <paramref name="counters"/> at <c>/metrics</c>;
    /// accept failures (counted as <see cref="ProxyLoop.Metrics"/> loop errors) and rendering errors go to <paramref name="log"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The address cannot be bound; the message names it.</exception>
    public static MetricsEndpoint Open(IPEndPoint endPoint, ProxyCounters counters, ProxyLog log)
    {
        ArgumentNullException.ThrowIfNull(counters);
        ArgumentNullException.ThrowIfNull(log);
        var endpoint = new MetricsEndpoint(
            endPoint,
            () =>
            {
                var text = new StringBuilder(8192);
                counters.WritePrometheus(text);
                return Task.FromResult(text.ToString());
            },
            acceptFailed: e =>
            {
                counters.LoopError(ProxyLoop.Metrics);
                log.LoopFailed(ProxyLoop.Metrics, endPoint.ToString(), e is System.Net.Sockets.SocketException s ? s.SocketErrorCode.ToString() : e.ToString(), null);
            },
            renderFailed: e => log.Unexpected("rendering the metrics", e));
        log.MetricsListening(endpoint.LocalEndPoint);
        return endpoint;
    }
}
