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
            case ControlVerb.Drain when command.Migrate:
            {
                if (_migration is null)
                {
                    return Task.FromResult("error: drain --migrate needs live migration (--migrate ADDR on run)\n");
                }
                _policy.DrainRequested = true;
                var held = _engine.Held.Count;
                return StartMigration("drain --migrate", _engine.TableWithout(_options.NodeId),
                    $"node {_options.NodeId} draining ({held} buckets move to peers); sessions move to their buckets' owners: ");
            }
            case ControlVerb.Drain:
                _policy.DrainRequested = true;
                return Task.FromResult($"node {_options.NodeId} draining: no new flows here, established flows continue ({_engine.Held.Count} buckets move to peers)\n");
            case ControlVerb.Migrate:
                return _migration is null
                    ? Task.FromResult("error: migrate needs live migration (--migrate ADDR on run)\n")
                    : StartMigration("migrate", _engine.CurrentTable, $"node {_options.NodeId}: sessions of buckets it does not own move to their owners: ");
            case ControlVerb.Undrain:
                _policy.DrainRequested = false;
                return Task.FromResult($"node {_options.NodeId} active again: its buckets return by hand-over\n");
            default:
                return Task.FromResult($"error: unknown request '{request}' (status [--json], owner ADDR [PROTO/PORT [SOURCEPORT]], drain [--migrate], undrain, migrate)\n");
        }
    }

    /// <summary>How long a migrate request waits for its run before it answers that the run goes on (the control socket gives up at 5 s).</summary>
    private static readonly TimeSpan MigrationAnswerWait = TimeSpan.FromSeconds(4);

    /// <summary>
    /// Starts a run of the coordinator with <paramref name="table"/> (taken here, on the loop) as the
    /// owner of each session's client bucket; answers with its summary, or that it goes on.
    /// </summary>
    private Task<string> StartMigration(string name, OwnershipTable table, string prefix)
    {
        var o = _options;
        int OwnerOf(Migration.ProxySession s)
        {
            var mode = AffinityRule.ModeOf(o.Affinity, "tcp", s.ClientVip.Port);
            return table.Owner(BucketHash.Bucket(s.Client.Address, s.Client.Port, mode, o.Buckets, o.EffectiveSeed));
        }
        var counters = _migration!.Counters;
        void MovedOut(IReadOnlyCollection<FlowTuple> flows, MovedFlowChange change)
        {
            try
            {
                _filter.MovedOut(flows, change);
            }
            finally
            {
                // Also when the set refused: without an entry, a moved flow's packets are mid-flow strangers, dropped once its moved_out element times out.
                if (change == MovedFlowChange.Moved)
                {
                    ForgetMoved(flows);
                }
            }
        }
        void ForgetMoved(IReadOnlyCollection<FlowTuple> flows)
        {
            // This node never sees the flow end (ingress drops its frames once the bucket is handed over): delete its entries now.
            try
            {
                var deletes = _filter.ForgetMoved(flows);
                counters.ConntrackDeletes(deletes.Deleted, deletes.Missing, deletes.Errors);
            }
            catch (KernelFilterException)
            {
                counters.ConntrackDeletes(0, 0, flows.Count);
            }
        }
        var run = _migration.TryRun(name, o.NodeId, OwnerOf, MovedOut,
            family => family == System.Net.Sockets.AddressFamily.InterNetworkV6 ? o.Vip6 is not null : o.Vip is not null);
        if (run is null)
        {
            return Task.FromResult("error: a migration is already running (see l2bal status)\n");
        }
        return Task.Run(async () =>
        {
            var first = await Task.WhenAny(run, Task.Delay(MigrationAnswerWait)).ConfigureAwait(false);
            if (first != run)
            {
                return $"{prefix}still moving after {MigrationAnswerWait.TotalSeconds:0} s: see 'l2bal status' (migrations)\n";
            }
            try
            {
                return $"{prefix}{await run.ConfigureAwait(false)}\n";
            }
            catch (Migration.MigrationProxyException e)
            {
                return $"error: {prefix}{e.Message}\n";
            }
        });
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
            Migrations = _migration is { } m ? new MigrationStatus(_options.Migration!.ToString(), m.Counters.InProgress, m.Counters.Done,
                m.Counters.Refused, m.Counters.ProxyErrors, m.Counters.ConntrackDeleted, m.Counters.ConntrackMissing, m.Counters.ConntrackErrors,
                m.Counters.MovedOutResolved, m.Counters.MovedOutLeft,
                m.Addresses.OrderBy(p => p.Key).ToDictionary(p => p.Key.ToString(CultureInfo.InvariantCulture), p => p.Value.ToString())) : null,
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
        new Dictionary<string, long> { ["arp"] = io.Arp.SocketErrors, ["adverts"] = io.Adverts.SocketErrors, ["watch"] = io.Arp.WatchErrors, ["nd"] = io.Arp.NeighborSocketErrors },
        io.Arp.NeighborSolicitations,
        io.Arp.NeighborAnswers,
        Enum.GetValues<ArpIgnoreReason>().ToDictionary(r => r.ToString(), io.Arp.NeighborIgnored),
        Enum.GetValues<NeighborRejection>().Where(r => r != NeighborRejection.None).ToDictionary(r => r.ToString(), io.Arp.NeighborRejected),
        io.Arp.NeighborAnnouncements,
        io.Arp.NeighborClaims);
}
