using System.Globalization;
using System.Text;
using System.Text.Json;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Diagnostics;

/// <summary>Renders a <see cref="StatusSnapshot"/> as text for people, as JSON (docs/status-json.md) and as Prometheus metrics.</summary>
internal static class StatusRenderer
{
    public static string Json(StatusSnapshot s) => JsonSerializer.Serialize(s, StatusJsonContext.Default.StatusSnapshot) + "\n";

    public static string Text(StatusSnapshot s)
    {
        var text = new StringBuilder();
        var health = s.Health.Healthy ? "healthy" : $"unhealthy: {s.Health.Detail}";
        text.Append(CultureInfo.InvariantCulture, $"node {s.NodeId}/{s.NodeCount}: {BalancerLog.Describe(s.State)}, {health}\n");
        if (s.Conflict is { } conflict)
        {
            text.Append(CultureInfo.InvariantCulture, $"yielding: {conflict.Detail}\n");
        }
        var services = s.Services.Count == 0 ? "all ports" : string.Join(", ", s.Services)
            + (s.Affinity.Count == 0 ? "" : $" (affinity {string.Join(", ", s.Affinity)})");
        text.Append(CultureInfo.InvariantCulture, $"VIP {string.Join(" ", new[] { s.Vip, s.Vip6 }.OfType<string>())} cluster MAC {s.ClusterMac} ({s.MacMode}); view {{{string.Join(",", s.View)}}}; services {services}\n");
        text.Append(CultureInfo.InvariantCulture, $"buckets: {s.Held} of {s.Buckets} held here, {s.Draining} draining\n");
        text.Append(CultureInfo.InvariantCulture, $"port slice {s.PortSlice.Low}-{s.PortSlice.High}: {(s.PortSlice.Granted ? "granted" : "withheld")}\n");
        text.Append("slices: ").AppendJoin(", ", s.Slices.Select(n => $"node {n.NodeId}: {n.Low}-{n.High}")).Append('\n');
        text.Append("bucket map: ").AppendJoin(", ", s.Owners.Select(o => $"node {o.Key}: {o.Value}")).Append('\n');
        text.Append(CultureInfo.InvariantCulture, $"weight {s.Weight}; view weights: ").AppendJoin(", ", s.Weights.Select(w => $"node {w.Key}: {w.Value}")).Append('\n');
        foreach (var peer in s.Peers)
        {
            // A dead peer's last word is no claim: its buckets are covered (the bucket map says by whom).
            var state = peer.Alive ? BalancerLog.Describe(peer.State) : "dead";
            var keys = peer.KeyId is null ? "" : $", advert v{peer.Version} key {peer.KeyId}{(peer.AlsoAccepts is null ? "" : $" (also accepts {peer.AlsoAccepts})")}";
            var holds = peer.Alive ? $"holds {peer.Held}" : $"holds nothing (said {peer.Held} when last heard)";
            text.Append(CultureInfo.InvariantCulture, $"peer {peer.NodeId}: {state}, heard {peer.LastHeardMs} ms ago, {holds}{keys}\n");
        }
        var c = s.Counters;
        text.Append(CultureInfo.InvariantCulture, $"adverts: {c.AdvertsSent} sent, {c.AdvertsReceived} received");
        foreach (var (reason, count) in c.AdvertsRejected.Where(r => r.Value > 0))
        {
            text.Append(CultureInfo.InvariantCulture, $", {count} rejected ({reason})");
        }
        text.Append('\n');
        text.Append(CultureInfo.InvariantCulture, $"advert timing: {c.AdvertsLate} sent later than two intervals, largest gap {c.LargestAdvertGapMs:0.###} ms, {c.LeaseLapses} lease lapses, {c.AdvertBudgetSpent} steps with the read budget spent, {c.AdvertKernelDrops} dropped by the kernel (buffer full)\n");
        if (s.Adverts is { } a)
        {
            text.Append(CultureInfo.InvariantCulture, $"adverts: version {a.Version} (speaks up to {a.HighestVersion}), signed with key {a.SigningKeyId}, accepting {string.Join(" and ", a.AcceptedKeyIds)}\n");
            foreach (var f in a.ForeignKeyIds)
            {
                text.Append(CultureInfo.InvariantCulture, $"KEY MISMATCH: {(f.KeyId == "v1" ? "version-1 adverts no key of this node verifies" : $"adverts signed with key {f.KeyId}")} from {f.Source}, heard {f.LastHeardMs} ms ago ({f.Adverts} so far)\n");
            }
        }
        if (s.Migrations is { } m)
        {
            text.Append(CultureInfo.InvariantCulture, $"migrations at {m.NodeAddress}: {m.InProgress} in progress, {m.Done} done, refused: ")
                .AppendJoin(", ", m.Refused.Where(r => r.Value > 0).Select(r => $"{r.Key} {r.Value}").DefaultIfEmpty("none"))
                .Append(CultureInfo.InvariantCulture, $"; {m.ProxyErrors} l2proxy errors; peers: ")
                .AppendJoin(", ", m.PeerAddresses.Select(p => $"node {p.Key} at {p.Value}").DefaultIfEmpty("none advertise an address")).Append('\n');
        }
        if (s.Control.Refused > 0 || s.Control.AcceptFailures > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"control {s.Control.Socket}: {s.Control.Refused} requests refused, {s.Control.AcceptFailures} failed accepts\n");
        }
        text.Append("events: ").AppendJoin(", ", c.Events.Where(e => e.Value > 0).Select(e => $"{e.Key} {e.Value}")).Append('\n');
        if (s.Segment is { } g)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"arp: {g.ArpRequests} requests for the VIP, {g.ArpReplies} answered, {g.ArpIgnored.GetValueOrDefault("RequesterLimit") + g.ArpIgnored.GetValueOrDefault("TotalLimit")} over the rate limits; {g.Announcements} announcements; ");
            if (s.Vip6 is not null)
            {
                text.Append(CultureInfo.InvariantCulture,
                    $"nd: {g.NdSolicitations} solicitations for the VIP, {g.NdAnswers} answered, {g.NdIgnored?.GetValueOrDefault("RequesterLimit") + g.NdIgnored?.GetValueOrDefault("TotalLimit")} over the rate limits; {g.NdAnnouncements} announcements; {g.NdClaims} claims; ");
            }
            text.Append("spoofs: ").AppendJoin(", ", g.Spoofs.Select(p => $"{p.Key} {p.Value}"));
            text.Append("; socket errors: ").AppendJoin(", ", g.SocketErrors.Select(p => $"{p.Key} {p.Value}")).Append('\n');
        }
        if (s.Kernel is { } k)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"kernel: accepted new {k.AcceptedNew}, established {k.AcceptedEstablished}, by slice {k.AcceptedSlice}; dropped early {k.DroppedNotOwnedEarly}, not owned {k.DroppedNotOwned}, other slice {k.DroppedOtherSlice}, no lease {k.DroppedNoLease}, mid-flow {k.DroppedMidFlow}, slice mid-flow {k.DroppedSliceMidFlow}, stateless not owned {k.DroppedStatelessNotOwned}\n");
        }
        return text.ToString();
    }

    public static string Prometheus(StatusSnapshot s, TimeSpan gcPause)
    {
        var text = new StringBuilder();
        var w = new PrometheusWriter(text);
        var c = s.Counters;
        w.Gauge("l2bal_buckets_held", "Buckets this node accepts new flows for.", s.Held);
        w.Gauge("l2bal_weight", "This node's weight (--weight).", s.Weight);
        w.Gauge("l2bal_buckets_draining", "Released buckets still carrying this node's established flows.", s.Draining);
        w.Gauge("l2bal_peers_alive", "Peers heard within the dead time.", s.Peers.Count(p => p.Alive));
        w.Gauge("l2bal_healthy", "1 when the local services pass every probe.", s.Health.Healthy ? 1 : 0);
        var probes = w.Family("l2bal_probe_healthy", MetricType.Gauge, "1 when this probe passes (its own fall and rise), by probe.");
        foreach (var probe in s.Health.Probes)
        {
            probes.Sample("probe", probe.Probe, probe.Healthy ? 1 : 0);
        }
        var wake = s.Health.Wake;
        w.Gauge("l2bal_probe_wake_listening", "1 when the daemon reads the port-unreachables of its probed UDP services (nflog).", wake.Listening ? 1 : 0);
        w.Counter("l2bal_probe_wakes_total", "Early full probes a port-unreachable from the VIP asked for.", wake.Wakes);
        var ignored = w.Family("l2bal_probe_wakes_ignored_total", MetricType.Counter, "Port-unreachables that woke no probe, by reason.");
        ignored.Sample("reason", "not_service", wake.IgnoredNotService);
        ignored.Sample("reason", "rate_limited", wake.IgnoredRateLimited);
        ignored.Sample("reason", "failing", wake.IgnoredFailing);
        w.Counter("l2bal_probe_wake_malformed_total", "Logged packets that were not a port-unreachable from the VIP (dropped).", wake.Malformed);
        w.Counter("l2bal_probe_wake_overruns_total", "Times the kernel dropped logged packets for want of room in the socket (ENOBUFS).", wake.Overruns);
        w.Counter("l2bal_adverts_sent_total", "Advertisements sent.", c.AdvertsSent);
        w.Counter("l2bal_advert_send_failures_total", "Advertisements that could not be sent (link down).", c.AdvertSendFailures);
        w.Counter("l2bal_adverts_received_total", "Advertisements accepted.", c.AdvertsReceived);
        Labelled(w.Family("l2bal_adverts_rejected_total", MetricType.Counter, "Advertisements rejected, by reason."), "reason", c.AdvertsRejected);
        w.Counter("l2bal_adverts_late_total", "Adverts sent more than two intervals after the previous one.", c.AdvertsLate);
        w.Gauge("l2bal_advert_largest_gap_seconds", "The longest time between two consecutive adverts of this node.", c.LargestAdvertGapMs / 1000);
        w.Counter("l2bal_lease_lapses_total", "Lease renewals later than the lease (new flows refused in between).", c.LeaseLapses);
        w.Counter("l2bal_advert_budget_spent_total", "Loop steps that read a whole advert budget and left frames for the next.", c.AdvertBudgetSpent);
        w.Counter("l2bal_advert_kernel_drops_total", "Advert frames the kernel dropped with the socket's receive ring full.", c.AdvertKernelDrops);
        if (s.Adverts is { } adverts)
        {
            w.Gauge("l2bal_advert_version", "The version of this node's last advert.", adverts.Version);
            w.Gauge("l2bal_advert_foreign_keys", "Key ids heard within the dead time that this node does not hold (a key mismatch).", adverts.ForeignKeyIds.Count);
        }
        w.Counter("l2bal_ownership_changes_total", "Changes of the held bucket set.", c.OwnershipChanges);
        Labelled(w.Family("l2bal_events_total", MetricType.Counter, "Events recorded, by kind (docs/status-json.md)."), "kind", c.Events);
        w.Counter("l2bal_loop_wakeups_total", "Times the daemon's loop woke (adverts, requests, deadlines): its idle cost.", c.LoopWakeups);
        if (s.Segment is { } g)
        {
            w.Counter("l2bal_arp_requests_total", "Who-has requests for the VIP seen.", g.ArpRequests);
            w.Counter("l2bal_arp_replies_total", "Who-has requests for the VIP answered.", g.ArpReplies);
            Labelled(w.Family("l2bal_arp_ignored_total", MetricType.Counter, "ARP frames not answered, by reason (RequesterLimit and TotalLimit: the rate limits)."), "reason", g.ArpIgnored);
            w.Counter("l2bal_arp_send_errors_total", "ARP replies and gratuitous ARPs the kernel refused.", g.ArpSendErrors);
            w.Counter("l2bal_arp_announcements_total", "Gratuitous ARPs sent (start, holding again, answers to spoofing).", g.Announcements);
            w.Counter("l2bal_nd_solicitations_total", "Neighbour solicitations for the IPv6 VIP seen.", g.NdSolicitations);
            w.Counter("l2bal_nd_answers_total", "Neighbour solicitations for the IPv6 VIP answered.", g.NdAnswers);
            Labelled(w.Family("l2bal_nd_ignored_total", MetricType.Counter, "ND frames not answered, by reason (RequesterLimit and TotalLimit: the rate limits)."), "reason", g.NdIgnored ?? new Dictionary<string, long>());
            Labelled(w.Family("l2bal_nd_rejected_total", MetricType.Counter, "Malformed ND packets dropped, by reason (RFC 4861 section 7.1)."), "reason", g.NdRejected ?? new Dictionary<string, long>());
            w.Counter("l2bal_nd_announcements_total", "Unsolicited neighbour advertisements of the IPv6 VIP sent.", g.NdAnnouncements);
            w.Counter("l2bal_nd_claims_total", "ND packets naming the IPv6 VIP at a MAC other than the cluster MAC.", g.NdClaims);
            Labelled(w.Family("l2bal_spoofs_total", MetricType.Counter, "Frames of other hosts claiming the VIP or sent from the cluster MAC, by kind."), "kind", g.Spoofs);
            Labelled(w.Family("l2bal_packet_socket_errors_total", MetricType.Counter, "Errors the packet sockets returned (ENETDOWN with the interface down), by socket."), "socket", g.SocketErrors);
        }
        w.Counter("l2bal_control_refused_total", "Control requests refused for want of privilege (drain, undrain by a user outside root and --control-group).", s.Control.Refused);
        w.Counter("l2bal_control_accept_failures_total", "Accepts on the control socket that failed (out of descriptors) and were retried.", s.Control.AcceptFailures);
        if (s.Migrations is { } m)
        {
            w.Gauge("l2bal_migrations_in_progress", "Sessions asked to move to a peer whose answer has not come yet.", m.InProgress);
            w.Counter("l2bal_migrations_done_total", "Sessions moved to a peer (drain --migrate, migrate).", m.Done);
            Labelled(w.Family("l2bal_migrations_refused_total", MetricType.Counter, "Sessions that could not move and stayed, by reason."), "reason", m.Refused);
            w.Counter("l2bal_migration_proxy_errors_total", "Requests to l2proxy's migration socket that failed.", m.ProxyErrors);
            w.Counter("l2bal_migration_conntrack_deleted_total", "Conntrack entries of moved flows deleted at move time.", m.ConntrackDeleted);
            w.Counter("l2bal_migration_conntrack_errors_total", "Moved flows whose conntrack entry could not be deleted.", m.ConntrackErrors);
            w.Counter("l2bal_migration_moved_out_resolved_total", "Sessions whose moved-out flows were resolved on a failure path (proxy gone, error mid-batch).", m.MovedOutResolved);
            w.Counter("l2bal_migration_moved_out_left_total", "Sessions whose flows the kernel refused to take out of moved_out (left to its timeout).", m.MovedOutLeft);
        }
        w.Counter("l2bal_gc_pause_seconds_total", "Time the runtime paused the daemon's threads for garbage collection.", gcPause.TotalSeconds);
        if (s.Kernel is { } k)
        {
            w.Counter("l2bal_lease_renewals_total", "Kernel lease renewals the filter counted.", k.LeaseRenewals);
            w.Counter("l2bal_lease_fallbacks_total", "Lease renewals the packet path missed and a transaction made.", k.LeaseFallbacks);
            var accepted = w.Family("l2bal_packets_accepted_total", MetricType.Counter, "Packets to the VIP accepted by the kernel filter, by reason.");
            accepted.Sample("reason", "new", k.AcceptedNew);
            accepted.Sample("reason", "established", k.AcceptedEstablished);
            accepted.Sample("reason", "slice", k.AcceptedSlice);
            if (s.Migrations is not null)
            {
                accepted.Sample("reason", "moved_in", k.AcceptedMovedIn);
            }
            var dropped = w.Family("l2bal_packets_dropped_total", MetricType.Counter, "Packets to the VIP dropped by the kernel filter, by reason.");
            dropped.Sample("reason", "not_owned_early", k.DroppedNotOwnedEarly);
            dropped.Sample("reason", "not_owned", k.DroppedNotOwned);
            dropped.Sample("reason", "other_slice", k.DroppedOtherSlice);
            dropped.Sample("reason", "no_lease", k.DroppedNoLease);
            dropped.Sample("reason", "mid_flow", k.DroppedMidFlow);
            dropped.Sample("reason", "slice_mid_flow", k.DroppedSliceMidFlow);
            dropped.Sample("reason", "stateless_not_owned", k.DroppedStatelessNotOwned);
            if (s.Migrations is not null)
            {
                dropped.Sample("reason", "moved_out", k.DroppedMovedOut);
            }
        }
        return text.ToString();
    }

    private static void Labelled(PrometheusWriter family, string label, IReadOnlyDictionary<string, long> values)
    {
        foreach (var (name, value) in values)
        {
            family.Sample(label, name, value);
        }
    }

    /// <summary>Every rejection reason with its count (zero included: every counter exists from the start).</summary>
    public static Dictionary<string, long> Rejections(BalancerCounters counters) =>
        Enum.GetValues<AdvertRejection>().Where(r => r != AdvertRejection.None).ToDictionary(r => r.ToString(), counters.Rejected);
}
