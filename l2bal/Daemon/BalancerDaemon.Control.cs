using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Kernel;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Daemon;

/// <summary>Control requests (status, owner, drain, undrain) and metrics, answered on the loop's thread.</summary>
internal sealed partial class BalancerDaemon
{
    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    /// <summary>
    /// Answers a request. Runs on the loop, which owns the state; what reads the kernel (the
    /// counters, tens of milliseconds) finishes on a pool thread, so the loop is never held up.
    /// </summary>
    private Task<string> HandleAsync(string request)
    {
        var parts = request.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.FirstOrDefault() == "status")
        {
            var json = parts.Contains("--json");
            return WithKernelCounters(Snapshot(), s => json ? JsonSerializer.Serialize(s, JsonOptions) + "\n" : StatusText(s));
        }
        return Task.FromResult(Handle(parts, request));
    }

    /// <summary>Completes a loop-made snapshot with the kernel counters and renders it, off the loop.</summary>
    private Task<string> WithKernelCounters(StatusSnapshot partial, Func<StatusSnapshot, string> render) => Task.Run(() =>
    {
        try
        {
            return render(partial with { Kernel = _filter.ReadCounters() });
        }
        catch (Exception e) when (e is KernelFilterException or InvalidOperationException or IOException)
        {
            return $"error: reading the kernel filter's counters: {e.Message}\n";
        }
    });

    private string Handle(string[] parts, string request)
    {
        switch (parts.FirstOrDefault())
        {
            case "owner" when parts.Length == 2 && IPAddress.TryParse(parts[1], out var address) && address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork:
            {
                var bucket = BucketOf(address);
                var owner = _engine.CurrentTable.Owner(bucket);
                var here = _engine.Held.Contains(bucket) ? "held here" : _draining.Contains(bucket) ? "draining here" : "not held here";
                return string.Create(CultureInfo.InvariantCulture,
                    $"{address} bucket {bucket} owner {(owner == 0 ? "none" : owner.ToString(CultureInfo.InvariantCulture))} ({here})\n");
            }
            case "drain":
                _drainRequested = true;
                return $"node {_options.NodeId} draining: no new flows here, established flows continue ({_engine.Held.Count} buckets move to peers)\n";
            case "undrain":
                _drainRequested = false;
                return $"node {_options.NodeId} active again: its buckets return by hand-over\n";
            default:
                return $"error: unknown request '{request}' (status [--json], owner ADDR, drain, undrain)\n";
        }
    }

    private StatusSnapshot Snapshot()
    {
        var now = Now;
        var table = _engine.CurrentTable;
        var peers = _engine.Peers
            .OrderBy(p => p.Key)
            .Select(p => new PeerSnapshot(
                p.Key,
                _engine.IsAlive(p.Key) ? MembershipEngine.Describe(p.Value.State) : "dead",
                (long)(now - p.Value.LastHeard).TotalMilliseconds,
                p.Value.HeldCount))
            .ToList();
        var owners = Enumerable.Range(1, _options.NodeCount).ToDictionary(id => id.ToString(CultureInfo.InvariantCulture), table.CountOf);
        owners["none"] = table.UnownedCount;
        var rejected = Enum.GetValues<AdvertRejection>()
            .Where(r => r != AdvertRejection.None && _counters.Rejected(r) > 0)
            .ToDictionary(r => r.ToString(), _counters.Rejected);
        return new StatusSnapshot(
            _options.NodeId,
            _options.NodeCount,
            MembershipEngine.Describe(_engine.LocalState),
            _healthy ? "healthy" : $"unhealthy: {_healthFailure}",
            _options.Vip.ToString(),
            _options.Services.Count == 0 ? "all ports" : string.Join(", ", _options.Services),
            _clusterMac.ToString(),
            _options.Buckets,
            _engine.Held.Count,
            _draining.Count,
            MembershipEngine.FormatMask(_engine.AdvertisedMask),
            owners,
            peers,
            _counters.AdvertsSent,
            _counters.AdvertsReceived,
            rejected,
            NoKernelCounters,
            _counters.OwnershipChanges,
            Interlocked.Read(ref _wakeups));
    }

    private static string StatusText(StatusSnapshot s)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"node {s.NodeId}/{s.NodeCount}: {s.State}, {s.Health}\n");
        text.Append(CultureInfo.InvariantCulture, $"VIP {s.Vip} cluster MAC {s.ClusterMac}; view {s.View}; services {s.Services}\n");
        text.Append(CultureInfo.InvariantCulture, $"buckets: {s.Held} of {s.Buckets} held here, {s.Draining} draining\n");
        text.Append("bucket map: ").AppendJoin(", ", s.Owners.Select(o => $"node {o.Key}: {o.Value}")).Append('\n');
        foreach (var peer in s.Peers)
        {
            text.Append(CultureInfo.InvariantCulture, $"peer {peer.NodeId}: {peer.State}, heard {peer.LastHeardMs} ms ago, holds {peer.Held}\n");
        }
        text.Append(CultureInfo.InvariantCulture, $"adverts: {s.AdvertsSent} sent, {s.AdvertsReceived} received");
        foreach (var (reason, count) in s.AdvertsRejected)
        {
            text.Append(CultureInfo.InvariantCulture, $", {count} rejected ({reason})");
        }
        text.Append('\n');
        var k = s.Kernel;
        text.Append(CultureInfo.InvariantCulture,
            $"kernel: accepted new {k.AcceptedNew}, established {k.AcceptedEstablished}, by slice {k.AcceptedSlice}; dropped early {k.DroppedNotOwnedEarly}, not owned {k.DroppedNotOwned}, other slice {k.DroppedOtherSlice}, no lease {k.DroppedNoLease}, mid-flow {k.DroppedMidFlow}\n");
        return text.ToString();
    }

    /// <summary>A scrape's answer: the snapshot on the loop, the kernel counters and the text off it.</summary>
    private Task<string> RenderMetricsAsync() => WithKernelCounters(Snapshot(), RenderMetrics);

    private string RenderMetrics(StatusSnapshot s)
    {
        var text = new StringBuilder();
        void Metric(string name, string type, string help, IEnumerable<(string Labels, long Value)> values)
        {
            text.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} {type}\n");
            foreach (var (labels, value) in values)
            {
                text.Append(CultureInfo.InvariantCulture, $"{name}{labels} {value}\n");
            }
        }
        Metric("l2bal_buckets_held", "gauge", "Buckets this node accepts new flows for.", [("", s.Held)]);
        Metric("l2bal_buckets_draining", "gauge", "Released buckets still carrying this node's established flows.", [("", s.Draining)]);
        Metric("l2bal_peers_alive", "gauge", "Peers heard within the dead time.", [("", s.Peers.Count(p => p.State != "dead"))]);
        Metric("l2bal_healthy", "gauge", "1 when the local service passes its probe.", [("", _healthy ? 1 : 0)]);
        Metric("l2bal_adverts_sent_total", "counter", "Advertisements sent.", [("", s.AdvertsSent)]);
        Metric("l2bal_adverts_received_total", "counter", "Advertisements accepted.", [("", s.AdvertsReceived)]);
        Metric("l2bal_adverts_rejected_total", "counter", "Advertisements rejected, by reason.",
            Enum.GetValues<AdvertRejection>().Where(r => r != AdvertRejection.None).Select(r => ($"{{reason=\"{r}\"}}", _counters.Rejected(r))));
        Metric("l2bal_ownership_changes_total", "counter", "Changes of the held bucket set.", [("", s.OwnershipChanges)]);
        Metric("l2bal_loop_wakeups_total", "counter", "Times the daemon's loop woke (adverts, requests, deadlines): its idle cost.", [("", s.Wakeups)]);
        Metric("l2bal_gc_pause_seconds_total", "counter", "Time the runtime paused the daemon's threads for garbage collection.", [("", (long)GC.GetTotalPauseDuration().TotalSeconds)]);
        Metric("l2bal_lease_renewals_total", "counter", "Kernel lease renewals the filter counted.", [("", s.Kernel.LeaseRenewals)]);
        Metric("l2bal_lease_fallbacks_total", "counter", "Lease renewals the packet path missed and a transaction made.", [("", s.Kernel.LeaseFallbacks)]);
        var k = s.Kernel;
        Metric("l2bal_packets_accepted_total", "counter", "Packets to the VIP accepted by the kernel filter, by reason.",
            [("{reason=\"new\"}", k.AcceptedNew), ("{reason=\"established\"}", k.AcceptedEstablished), ("{reason=\"slice\"}", k.AcceptedSlice)]);
        Metric("l2bal_packets_dropped_total", "counter", "Packets to the VIP dropped by the kernel filter, by reason.",
            [("{reason=\"not_owned_early\"}", k.DroppedNotOwnedEarly), ("{reason=\"not_owned\"}", k.DroppedNotOwned),
             ("{reason=\"other_slice\"}", k.DroppedOtherSlice), ("{reason=\"no_lease\"}", k.DroppedNoLease), ("{reason=\"mid_flow\"}", k.DroppedMidFlow)]);
        return text.ToString();
    }

    private sealed record PeerSnapshot(int NodeId, string State, long LastHeardMs, uint Held);

    private sealed record StatusSnapshot(
        int NodeId,
        int NodeCount,
        string State,
        string Health,
        string Vip,
        string Services,
        string ClusterMac,
        int Buckets,
        int Held,
        int Draining,
        string View,
        Dictionary<string, int> Owners,
        List<PeerSnapshot> Peers,
        long AdvertsSent,
        long AdvertsReceived,
        Dictionary<string, long> AdvertsRejected,
        Kernel.KernelCounters Kernel,
        [property: System.Text.Json.Serialization.JsonIgnore] long OwnershipChanges,
        [property: System.Text.Json.Serialization.JsonIgnore] long Wakeups);

    /// <summary>Placeholder until the counters are read off the loop.</summary>
    private static readonly Kernel.KernelCounters NoKernelCounters = new(0, 0, 0, 0, 0, 0, 0, 0);
}
