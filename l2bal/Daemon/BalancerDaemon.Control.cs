using System.Globalization;
using System.Net;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Config;
using L2Balance.Balancer.Control;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Kernel;
using L2Balance.Balancer.Net;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Daemon;

/// <summary>Control requests (status, owner, drain, undrain) and scrapes, answered on the loop's thread.</summary>
internal sealed partial class BalancerDaemon
{
    private static NodeSliceStatus NodeSlice(int id, int count)
    {
        var (low, high) = PortSlice.For(id, count);
        return new NodeSliceStatus(id, low, high);
    }

    /// <summary>Starts an answer to every request and scrape queued since the last step.</summary>
    private void AnswerQueued(ControlServer control)
    {
        while (control.Requests.TryRead(out var request))
        {
            var reply = request.Reply;
            _ = HandleAsync(request.Text).ContinueWith(t => reply.TrySetResult(Answer(t)), TaskScheduler.Default);
        }
        while (_metricsRequests.TryDequeue(out var scrape))
        {
            _ = WithKernelCounters(Snapshot(), s => StatusRenderer.Prometheus(s, GC.GetTotalPauseDuration()))
                .ContinueWith(t => scrape.TrySetResult(Answer(t)), TaskScheduler.Default);
        }
    }

    /// <summary>A finished answer, or the error that ended it (the asker always gets a reply).</summary>
    private static string Answer(Task<string> task) =>
        task.IsCompletedSuccessfully ? task.Result : $"error: {task.Exception?.InnerException?.Message ?? "cancelled"}\n";

    /// <summary>A scrape: rendered by the loop, which owns the state.</summary>
    private Task<string> RequestMetrics()
    {
        var scrape = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        _metricsRequests.Enqueue(scrape);
        WakeLoop();
        return scrape.Task;
    }

    /// <summary>
    /// Answers a request. Runs on the loop, which owns the state; what reads the kernel (the
    /// counters, tens of milliseconds) finishes on a pool thread, so the loop is never held up.
    /// </summary>
    private Task<string> HandleAsync(string request)
    {
        var command = ControlCommand.Parse(request);
        switch (command.Verb)
        {
            case ControlVerb.Status:
                Func<StatusSnapshot, string> render = command.Json ? StatusRenderer.Json : StatusRenderer.Text;
                return WithKernelCounters(Snapshot(), render);
            case ControlVerb.Owner:
            {
                var address = command.Address!;
                var mode = command.Port is { } port ? AffinityRule.ModeOf(_options.Affinity, port.Protocol, port.Port) : AffinityMode.Single;
                if (mode == AffinityMode.None && command.SourcePort is null)
                {
                    return Task.FromResult($"error: {command.Port} has affinity none (source address and port): give the client's source port (--source-port N)\n");
                }
                var bucket = BucketHash.Bucket(address, command.SourcePort ?? 0, mode, _options.Buckets, _options.EffectiveSeed);
                var owner = _engine.CurrentTable.Owner(bucket);
                var here = _engine.Held.Contains(bucket) ? "held here" : _policy.Draining.Contains(bucket) ? "draining here" : "not held here";
                return Task.FromResult(string.Create(CultureInfo.InvariantCulture,
                    $"{address}{(command.Port is { } p ? $" to {p} (affinity {AffinityRule.ModeName(mode)})" : "")} bucket {bucket} owner {(owner == 0 ? "none" : owner.ToString(CultureInfo.InvariantCulture))} ({here})\n"));
            }
            case ControlVerb.Drain:
                _policy.DrainRequested = true;
                return Task.FromResult($"node {_options.NodeId} draining: no new flows here, established flows continue ({_engine.Held.Count} buckets move to peers)\n");
            case ControlVerb.Undrain:
                _policy.DrainRequested = false;
                return Task.FromResult($"node {_options.NodeId} active again: its buckets return by hand-over\n");
            default:
                return Task.FromResult($"error: unknown request '{request}' (status [--json], owner ADDR [PROTO/PORT [SOURCEPORT]], drain, undrain)\n");
        }
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

    /// <summary>Everything status reports but the kernel counters, taken on the loop.</summary>
    private StatusSnapshot Snapshot()
    {
        var now = Now;
        var table = _engine.CurrentTable;
        var owners = Enumerable.Range(1, _options.NodeCount).ToDictionary(id => id.ToString(CultureInfo.InvariantCulture), table.CountOf);
        owners["none"] = table.UnownedCount;
        var health = _health.View;
        var conflict = _policy.Conflict(now);
        return new StatusSnapshot
        {
            Time = DateTime.UtcNow,
            UptimeMs = Math.Round(now.TotalMilliseconds, 3),
            NodeId = _options.NodeId,
            NodeCount = _options.NodeCount,
            State = _engine.LocalState,
            Health = new HealthStatus(health.Healthy, HealthProbeSpec.Describe(_health.Options.Health),
                health.Healthy ? HealthFailure.None : health.LastFailure.Failure, health.Healthy ? null : health.LastFailure.Detail,
                [.. (health.Probes ?? []).Select(p => new ProbeStatus(p.Probe, p.Healthy,
                    p.Healthy ? HealthFailure.None : p.LastFailure.Failure, p.Healthy ? null : p.LastFailure.Detail))],
                _health.WakeCounters),
            Conflict = conflict is null ? null : new ConflictStatus(conflict.Kind, conflict.Peer, conflict.Description),
            Vip = _options.Vip?.ToString(),
            Vip6 = _options.Vip6?.ToString(),
            Services = [.. _options.Services.Select(v => v.ToString())],
            Affinity = [.. _options.Affinity.Select(r => r.ToString())],
            ClusterMac = _settings.ClusterMac.ToString(),
            MacMode = BalancerSettings.MacModeName(_options.MacMode),
            Buckets = _options.Buckets,
            Held = _engine.Held.Count,
            Draining = _policy.Draining.Count,
            View = MembershipEngine.NodesOf(_engine.AdvertisedMask),
            Owners = owners,
            Weight = _engine.Weight,
            Weights = Enumerable.Range(1, _options.NodeCount).ToDictionary(id => id.ToString(CultureInfo.InvariantCulture), table.Weights.Of),
            PortSlice = new PortSliceStatus(_settings.OwnSlice.Low, _settings.OwnSlice.High, _sliceGranted),
            Slices = [.. Enumerable.Range(1, _options.NodeCount).Select(id => NodeSlice(id, _options.NodeCount))],
            Peers = [.. _engine.Peers.OrderBy(p => p.Key).Select(p => WithKeys(new PeerStatus(
                p.Key, p.Value.State, _engine.IsAlive(p.Key), (long)(now - p.Value.LastHeard).TotalMilliseconds, p.Value.HeldCount)))],
            Counters = new CounterStatus(_counters.AdvertsSent, _counters.AdvertsReceived, _counters.AdvertSendFailures,
                StatusRenderer.Rejections(_counters), _counters.OwnershipChanges, _counters.Wakeups,
                new Dictionary<string, long>(_counters.Events, StringComparer.Ordinal),
                _counters.FirstAdvertMs, Math.Round(_counters.LongestStepMs, 3), Math.Round(_counters.LongestEarlyStepMs, 3),
                _counters.AdvertsLate, Math.Round(_counters.LargestAdvertGap.TotalMilliseconds, 3), _counters.LeaseLapses,
                _counters.AdvertBudgetSpent, _counters.AdvertKernelDrops),
            Adverts = AdvertStatusAt(now),
            Segment = _resources is { } io ? SegmentOf(io) : null,
            LastEventSeq = _journal.LastSeq,
            Events = _journal.Recent(),
            Control = new ControlStatus(ControlServer.Describe(_options.ControlPath), _options.ControlGroup?.Name,
                _counters.ControlRefusals, _counters.ControlAcceptFailures),
        };
    }

    /// <summary>The ARP responder's and the packet sockets' counters (docs/status-json.md, <c>segment</c>).</summary>
    private static SegmentStatus SegmentOf(NodeResources io) => new(
        io.Arp.RequestsSeen,
        io.Arp.RepliesSent,
        Enum.GetValues<ArpIgnoreReason>().ToDictionary(r => r.ToString(), io.Arp.Ignored),
        io.Arp.SendErrors,
        io.Arp.Announcements,
        new Dictionary<string, long>
        {
            ["vip-claimed"] = io.Arp.Spoofs(SpoofKind.VipClaimed),
            ["cluster-mac-source"] = io.Arp.Spoofs(SpoofKind.ClusterMacSource),
        },
        new Dictionary<string, long> { ["arp"] = io.Arp.SocketErrors, ["adverts"] = io.Adverts.SocketErrors, ["watch"] = io.Arp.WatchErrors });
}
