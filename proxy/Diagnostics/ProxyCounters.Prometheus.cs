using System.Globalization;
using System.Text;
using L2Balance.Proxy.Protocol;

namespace L2Balance.Proxy.Diagnostics;

/// <summary>Prometheus text exposition format 0.0.4 of every counter (issue 3, docs/conventions.md §23).</summary>
public sealed partial class ProxyCounters
{
    /// <summary>The Content-Type of <see cref="WritePrometheus"/>'s output.</summary>
    public const string PrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

    private static readonly (SocksCommand Command, string Label)[] CommandLabels =
        [(SocksCommand.Connect, "connect"), (SocksCommand.Bind, "bind"), (SocksCommand.UdpAssociate, "udp_associate")];

    /// <summary>
    /// Writes every metric with its HELP and TYPE lines. Names carry their unit
    /// (<c>_total</c>, <c>_bytes_total</c>, <c>_seconds</c>); labels are the closed enums'
    /// member names (<see cref="SessionOutcome"/>, <see cref="UdpDropReason"/>).
    /// </summary>
    public void WritePrometheus(StringBuilder output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var w = new Writer(output);
        w.Metric("l2proxy_sessions_active", "gauge", "Client sessions open now (negotiating or relaying).", SessionsActive);
        w.Metric("l2proxy_sessions_total", "counter", "Client connections accepted since start.", SessionsTotal);

        w.Header("l2proxy_requests_total", "counter", "SOCKS requests by command.");
        foreach (var (command, label) in CommandLabels)
        {
            w.Sample("l2proxy_requests_total", "command", label, Command(command));
        }

        w.Header("l2proxy_sessions_ended_total", "counter", "Ended sessions by outcome.");
        foreach (var outcome in Enum.GetValues<SessionOutcome>())
        {
            w.Sample("l2proxy_sessions_ended_total", "outcome", outcome.ToString(), Outcome(outcome));
        }

        w.Metric("l2proxy_negotiate_timeouts_total", "counter", "Sessions closed for not finishing negotiation within timeout.negotiate.",
            Outcome(SessionOutcome.NegotiateTimeout));
        w.Metric("l2proxy_auth_failures_total", "counter", "RFC 1929 username/password checks that failed.", Outcome(SessionOutcome.AuthFailed));
        w.Header("l2proxy_rule_blocks_total", "counter", "Connections, requests and UDP datagrams refused by a client or socks rule.");
        w.Sample("l2proxy_rule_blocks_total", "rule", "client", Outcome(SessionOutcome.ClientBlocked));
        w.Sample("l2proxy_rule_blocks_total", "rule", "socks", Outcome(SessionOutcome.SocksBlocked));
        w.Sample("l2proxy_rule_blocks_total", "rule", "udp", UdpDropped(UdpDropReason.Blocked));

        w.Metric("l2proxy_client_received_bytes_total", "counter", "Bytes relayed from clients to targets (TCP and UDP payload, counted as they move).", BytesFromClients);
        w.Metric("l2proxy_client_sent_bytes_total", "counter", "Bytes relayed from targets to clients (TCP and UDP payload, counted as they move).", BytesToClients);

        w.Header("l2proxy_handshake_seconds", "histogram", "Time from accept to the success reply sent (CONNECT, BIND first reply, UDP ASSOCIATE).");
        long cumulative = 0;
        for (int i = 0; i < HandshakeBuckets.Length; i++)
        {
            cumulative += Interlocked.Read(ref _handshakeBuckets[i]);
            w.Sample("l2proxy_handshake_seconds_bucket", "le", HandshakeBuckets[i].ToString("R", CultureInfo.InvariantCulture), cumulative);
        }
        var count = HandshakeCount;
        w.Sample("l2proxy_handshake_seconds_bucket", "le", "+Inf", count);
        w.Line("l2proxy_handshake_seconds_sum", (Interlocked.Read(ref _handshakeTicks) / (double)TimeSpan.TicksPerSecond).ToString("R", CultureInfo.InvariantCulture));
        w.Line("l2proxy_handshake_seconds_count", count.ToString(CultureInfo.InvariantCulture));

        w.Metric("l2proxy_udp_associations_active", "gauge", "UDP associations open now.", UdpAssociationsActive);
        w.Metric("l2proxy_udp_datagrams_relayed_total", "counter", "UDP datagrams relayed, both ways.", UdpDatagramsRelayed);
        w.Header("l2proxy_udp_datagrams_dropped_total", "counter", "UDP datagrams dropped, by reason.");
        foreach (var reason in Enum.GetValues<UdpDropReason>())
        {
            w.Sample("l2proxy_udp_datagrams_dropped_total", "reason", reason.ToString(), UdpDropped(reason));
        }
    }

    private readonly struct Writer(StringBuilder output)
    {
        public void Header(string name, string type, string help) =>
            output.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n')
                .Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

        public void Metric(string name, string type, string help, long value)
        {
            Header(name, type, help);
            Line(name, value.ToString(CultureInfo.InvariantCulture));
        }

        public void Sample(string name, string label, string labelValue, long value) =>
            output.Append(name).Append('{').Append(label).Append("=\"").Append(labelValue).Append("\"} ")
                .Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');

        public void Line(string name, string value) => output.Append(name).Append(' ').Append(value).Append('\n');
    }
}
