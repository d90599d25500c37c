using System.Text;
using L2Balance.Common.Metrics;
using L2Balance.Proxy.Protocol;

namespace L2Balance.Proxy.Diagnostics;

/// <summary>Prometheus text exposition format 0.0.4 of every counter (issue 3, docs/conventions.md §23).</summary>
public sealed partial class ProxyCounters
{
    private static readonly (SocksCommand Command, string Label)[] CommandLabels =
        [(SocksCommand.Connect, "connect"), (SocksCommand.Bind, "bind"), (SocksCommand.UdpAssociate, "udp_associate")];

    /// <summary>
    /// Writes every metric with its HELP and TYPE lines (Content-Type <see cref="PrometheusWriter.ContentType"/>).
    /// Names carry their unit (<c>_total</c>, <c>_bytes_total</c>, <c>_seconds</c>); labels are the
    /// closed enums' member names (<see cref="SessionOutcome"/>, <see cref="UdpDropReason"/>).
    /// </summary>
    public void WritePrometheus(StringBuilder output)
    {
        var w = new PrometheusWriter(output);
        w.Gauge("l2proxy_sessions_active", "Client sessions open now (negotiating or relaying).", SessionsActive);
        w.Counter("l2proxy_sessions_total", "Client connections accepted since start.", SessionsTotal);

        w.Family("l2proxy_requests_total", MetricType.Counter, "SOCKS requests by command.");
        foreach (var (command, label) in CommandLabels)
        {
            w.Sample("command", label, Command(command));
        }

        w.Family("l2proxy_sessions_ended_total", MetricType.Counter, "Ended sessions by outcome.");
        foreach (var outcome in Enum.GetValues<SessionOutcome>())
        {
            w.Sample("outcome", outcome.ToString(), Outcome(outcome));
        }

        w.Counter("l2proxy_negotiate_timeouts_total", "Sessions closed for not finishing negotiation within timeout.negotiate.",
            Outcome(SessionOutcome.NegotiateTimeout));
        w.Counter("l2proxy_auth_failures_total", "RFC 1929 username/password checks that failed.", Outcome(SessionOutcome.AuthFailed));
        w.Family("l2proxy_rule_blocks_total", MetricType.Counter, "Connections, requests and UDP datagrams refused by a client or socks rule.");
        w.Sample("rule", "client", Outcome(SessionOutcome.ClientBlocked));
        w.Sample("rule", "socks", Outcome(SessionOutcome.SocksBlocked));
        w.Sample("rule", "udp", UdpDropped(UdpDropReason.Blocked));

        w.Counter("l2proxy_client_received_bytes_total", "Bytes relayed from clients to targets (TCP and UDP payload, counted as they move).", BytesFromClients);
        w.Counter("l2proxy_client_sent_bytes_total", "Bytes relayed from targets to clients (TCP and UDP payload, counted as they move).", BytesToClients);

        Span<long> buckets = stackalloc long[HandshakeBuckets.Length];
        for (var i = 0; i < buckets.Length; i++)
        {
            buckets[i] = Interlocked.Read(ref _handshakeBuckets[i]);
        }
        w.Histogram("l2proxy_handshake_seconds", "Time from accept to the success reply sent (CONNECT, BIND first reply, UDP ASSOCIATE).",
            HandshakeBuckets, buckets, HandshakeCount, Interlocked.Read(ref _handshakeTicks) / (double)TimeSpan.TicksPerSecond);

        w.Gauge("l2proxy_udp_associations_active", "UDP associations open now.", UdpAssociationsActive);
        w.Counter("l2proxy_udp_datagrams_relayed_total", "UDP datagrams relayed, both ways.", UdpDatagramsRelayed);
        w.Family("l2proxy_udp_datagrams_dropped_total", MetricType.Counter, "UDP datagrams dropped, by reason.");
        foreach (var reason in Enum.GetValues<UdpDropReason>())
        {
            w.Sample("reason", reason.ToString(), UdpDropped(reason));
        }

        WritePolicyMetrics(w);
        WritePortRangeMetrics(w);
        WriteGssapiMetrics(w);
        WriteMigrationMetrics(w);
        w.Family("l2proxy_password_checks_refused_total", MetricType.Counter,
            "RFC 1929 checks refused without running PBKDF2: the concurrent checks of one client address or of the process were at their cap.");
        w.Sample("limit", "per_address", PasswordChecksRefused(WorkLimit.PerClient));
        w.Sample("limit", "total", PasswordChecksRefused(WorkLimit.Total));
        w.Family("l2proxy_udp_lookups_refused_total", MetricType.Counter,
            "UDP datagrams dropped unresolved: the pending name lookups of their association or of the process were at their cap.");
        w.Sample("limit", "per_association", UdpLookupsRefused(WorkLimit.PerClient));
        w.Sample("limit", "total", UdpLookupsRefused(WorkLimit.Total));
        w.Family("l2proxy_loop_errors_total", MetricType.Counter, "Errors a long-lived loop logged, backed off from and survived, by loop.");
        w.Sample("loop", "accept", LoopErrors(ProxyLoop.Accept));
        w.Sample("loop", "udp_poller", LoopErrors(ProxyLoop.UdpPoller) + Relay.UdpPoller.WaitFailures);
        w.Sample("loop", "metrics", LoopErrors(ProxyLoop.Metrics));
        w.Counter("l2proxy_splice_fallbacks_total", "Relay directions that could not make a pipe (pipe2 failed, EMFILE) and copied instead.", SpliceFallbacks);
    }
}
