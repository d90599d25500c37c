using System.Text;
using L2Balance.Common.Metrics;
using L2Balance.Proxy.Auth;
using L2Balance.Proxy.Protocol;

namespace L2Balance.Proxy.Diagnostics;

/// <summary>The counters of GSS-API authentication (RFC 1961, issue 20).</summary>
public sealed partial class ProxyCounters
{
    private readonly long[] _gssapiFailures = new long[Enum.GetValues<GssapiFailure>().Length];
    private readonly long[] _gssapiAuthenticated = new long[Enum.GetValues<GssapiProtection>().Length];

    public long GssapiFailures(GssapiFailure failure) => Interlocked.Read(ref _gssapiFailures[(int)failure]);

    public long GssapiAuthenticated(GssapiProtection level) => Interlocked.Read(ref _gssapiAuthenticated[(int)level]);

    public void GssapiFailed(GssapiFailure failure) => Interlocked.Increment(ref _gssapiFailures[(int)failure]);

    public void GssapiEstablished(GssapiProtection level) => Interlocked.Increment(ref _gssapiAuthenticated[(int)level]);

    private void WriteGssapiMetrics(PrometheusWriter w)
    {
        w.Family("l2proxy_gssapi_authenticated_total", MetricType.Counter,
            "GSS-API sessions that completed the context and the protection-level subnegotiation, by the level agreed.");
        foreach (var level in Enum.GetValues<GssapiProtection>())
        {
            w.Sample("level", Snake(level.ToString()), GssapiAuthenticated(level));
        }
        w.Family("l2proxy_gssapi_failures_total", MetricType.Counter,
            "GSS-API sessions refused (RFC 1961 failure message or close) or ended by a per-message token that failed, by reason.");
        foreach (var failure in Enum.GetValues<GssapiFailure>())
        {
            w.Sample("reason", Snake(failure.ToString()), GssapiFailures(failure));
        }
    }

    /// <summary>PerMessage → per_message, as the other labels are written.</summary>
    internal static string Snake(string name)
    {
        var text = new StringBuilder(name.Length + 4);
        for (int i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0)
            {
                text.Append('_');
            }
            text.Append(char.ToLowerInvariant(name[i]));
        }
        return text.ToString();
    }
}
