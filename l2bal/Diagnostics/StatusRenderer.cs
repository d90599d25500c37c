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
        var services = s.Services.Count == 0 ? "all ports" : string.Join(", ", s.Services);
        text.Append(CultureInfo.InvariantCulture, $"VIP {s.Vip} cluster MAC {s.ClusterMac} ({s.MacMode}); view {{{string.Join(",", s.View)}}}; services {services}\n");
        text.Append(CultureInfo.InvariantCulture, $"buckets: {s.Held} of {s.Buckets} held here, {s.Draining} draining\n");
        text.Append(CultureInfo.InvariantCulture, $"port slice {s.PortSlice.Low}-{s.PortSlice.High}: {(s.PortSlice.Granted ? "granted" : "withheld")}\n");
        text.Append("bucket map: ").AppendJoin(", ", s.Owners.Select(o => $"node {o.Key}: {o.Value}")).Append('\n');
        foreach (var peer in s.Peers)
        {
            var state = peer.Alive ? BalancerLog.Describe(peer.State) : "dead";
            text.Append(CultureInfo.InvariantCulture, $"peer {peer.NodeId}: {state}, heard {peer.LastHeardMs} ms ago, holds {peer.Held}\n");
        }
        var c = s.Counters;
        text.Append(CultureInfo.InvariantCulture, $"adverts: {c.AdvertsSent} sent, {c.AdvertsReceived} received");
        foreach (var (reason, count) in c.AdvertsRejected.Where(r => r.Value > 0))
        {
            text.Append(CultureInfo.InvariantCulture, $", {count} rejected ({reason})");
        }
        text.Append('\n');
        text.Append("events: ").AppendJoin(", ", c.Events.Where(e => e.Value > 0).Select(e => $"{e.Key} {e.Value}")).Append('\n');
        if (s.Kernel is { } k)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"kernel: accepted new {k.AcceptedNew}, established {k.AcceptedEstablished}, by slice {k.AcceptedSlice}; dropped early {k.DroppedNotOwnedEarly}, not owned {k.DroppedNotOwned}, other slice {k.DroppedOtherSlice}, no lease {k.DroppedNoLease}, mid-flow {k.DroppedMidFlow}\n");
        }
        return text.ToString();
    }

    public static string Prometheus(StatusSnapshot s, TimeSpan gcPause)
    {
        var text = new StringBuilder();
        void Metric(string name, string type, string help, IEnumerable<(string Labels, double Value)> values)
        {
            text.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} {type}\n");
            foreach (var (labels, value) in values)
            {
                text.Append(CultureInfo.InvariantCulture, $"{name}{labels} {value}\n");
            }
        }
        var c = s.Counters;
        Metric("l2bal_buckets_held", "gauge", "Buckets this node accepts new flows for.", [("", s.Held)]);
        Metric("l2bal_buckets_draining", "gauge", "Released buckets still carrying this node's established flows.", [("", s.Draining)]);
        Metric("l2bal_peers_alive", "gauge", "Peers heard within the dead time.", [("", s.Peers.Count(p => p.Alive))]);
        Metric("l2bal_healthy", "gauge", "1 when the local service passes its probe.", [("", s.Health.Healthy ? 1 : 0)]);
        Metric("l2bal_adverts_sent_total", "counter", "Advertisements sent.", [("", c.AdvertsSent)]);
        Metric("l2bal_advert_send_failures_total", "counter", "Advertisements that could not be sent (link down).", [("", c.AdvertSendFailures)]);
        Metric("l2bal_adverts_received_total", "counter", "Advertisements accepted.", [("", c.AdvertsReceived)]);
        Metric("l2bal_adverts_rejected_total", "counter", "Advertisements rejected, by reason.",
            c.AdvertsRejected.Select(r => ($"{{reason=\"{r.Key}\"}}", (double)r.Value)));
        Metric("l2bal_ownership_changes_total", "counter", "Changes of the held bucket set.", [("", c.OwnershipChanges)]);
        Metric("l2bal_events_total", "counter", "Events recorded, by kind (docs/status-json.md).",
            c.Events.Select(e => ($"{{kind=\"{e.Key}\"}}", (double)e.Value)));
        Metric("l2bal_loop_wakeups_total", "counter", "Times the daemon's loop woke (adverts, requests, deadlines): its idle cost.", [("", c.LoopWakeups)]);
        Metric("l2bal_gc_pause_seconds_total", "counter", "Time the runtime paused the daemon's threads for garbage collection.", [("", gcPause.TotalSeconds)]);
        if (s.Kernel is { } k)
        {
            Metric("l2bal_lease_renewals_total", "counter", "Kernel lease renewals the filter counted.", [("", k.LeaseRenewals)]);
            Metric("l2bal_lease_fallbacks_total", "counter", "Lease renewals the packet path missed and a transaction made.", [("", k.LeaseFallbacks)]);
            Metric("l2bal_packets_accepted_total", "counter", "Packets to the VIP accepted by the kernel filter, by reason.",
                [("{reason=\"new\"}", k.AcceptedNew), ("{reason=\"established\"}", k.AcceptedEstablished), ("{reason=\"slice\"}", k.AcceptedSlice)]);
            Metric("l2bal_packets_dropped_total", "counter", "Packets to the VIP dropped by the kernel filter, by reason.",
                [("{reason=\"not_owned_early\"}", k.DroppedNotOwnedEarly), ("{reason=\"not_owned\"}", k.DroppedNotOwned),
                 ("{reason=\"other_slice\"}", k.DroppedOtherSlice), ("{reason=\"no_lease\"}", k.DroppedNoLease), ("{reason=\"mid_flow\"}", k.DroppedMidFlow)]);
        }
        return text.ToString();
    }

    /// <summary>Every rejection reason with its count (zero included: every counter exists from the start).</summary>
    public static Dictionary<string, long> Rejections(BalancerCounters counters) =>
        Enum.GetValues<AdvertRejection>().Where(r => r != AdvertRejection.None).ToDictionary(r => r.ToString(), counters.Rejected);
}
