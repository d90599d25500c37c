using L2Balance.Balancer.Kernel;

namespace L2Balance.Balancer.Migration;

/// <summary>
/// What one run did: sessions moved, refused by reason, owned here, the pauses the moved ones saw (l2proxy's, pause to Go) and,
/// per moved session, how long its batch's flows were dropped here before the move answered (an upper bound of the window the ends see).
/// </summary>
internal sealed record MigrationSummary(int Moved, IReadOnlyDictionary<string, int> Refused, int OwnedHere, IReadOnlyList<int> PausesMs, IReadOnlyList<int>? DroppedMs = null,
    MigrationPhases? Phases = null)
{
    /// <summary>One line for the control answer and the log.</summary>
    public override string ToString()
    {
        var refused = Refused.Count == 0 ? "none refused" : $"refused {Refused.Values.Sum()} ({string.Join(", ", Refused.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}: {p.Value}"))})";
        var pause = PausesMs.Count == 0 ? "" : $"; pause median {Percentile(PausesMs, 0.5)} ms, max {PausesMs.Max()} ms";
        var dropped = DroppedMs is not { Count: > 0 } d ? "" : $"; dropped until answered median {Percentile(d, 0.5)} ms, max {d.Max()} ms";
        var phases = Phases is not { Batches: > 0 } p ? "" : $"; {p}";
        return $"moved {Moved}, {refused}, {OwnedHere} owned here{pause}{dropped}{phases}";
    }

    private static int Percentile(IReadOnlyList<int> values, double p)
    {
        var sorted = values.Order().ToList();
        return sorted[(int)Math.Min(sorted.Count - 1, Math.Floor(p * sorted.Count))];
    }
}

/// <summary>
/// Where a run's time went, summed over its batches (ms): <c>prepare</c> (the peer starts capturing), the drop (the moved-out
/// transaction), <c>move</c> (the window the ends see), the settle (the moved-away or stayed transaction).
/// </summary>
internal sealed class MigrationPhases
{
    public int Batches { get; set; }

    public double PrepareMs { get; set; }

    public double DropMs { get; set; }

    public double MoveMs { get; set; }

    public double SettleMs { get; set; }

    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"{Batches} batches: prepare {PrepareMs:0} ms, drop {DropMs:0} ms, move {MoveMs:0} ms, settle {SettleMs:0} ms");
}

/// <summary>
/// Carries out a <see cref="MigrationPlan"/> on the old node, batch by batch (docs/design.md#migration-orchestration):
/// <c>prepare</c> (the peer captures), both legs' flows into the moved-out set, then <c>move</c>; a moved session's flows go to the
/// moved-away set (marked in conntrack by their next packet); a session that stayed has its flows taken
/// out again. When the proxy fails mid-move, a fresh <c>list</c> tells which sessions are still here:
/// they stay (flows out of the set), the others moved; when that fails too the proxy is gone and so
/// are its sessions: counted as refused, and their flows go to the moved-away set (no RST for a session that may have moved).
/// No flow stays in the moved-out set after its batch, an exception included (<see cref="MigrationCounters.MovedOutResolved"/>).
/// </summary>
internal sealed class MigrationRunner(IMigrationProxy proxy, Action<IReadOnlyCollection<FlowTuple>, MovedFlowChange> movedOut, MigrationCounters counters,
    TimeSpan? settleFor = null)
{
    /// <summary>
    /// After a failed <c>move</c>, how long the proxy may still be deciding its paused sessions (listed
    /// <c>stays=not-established</c>): above l2proxy's own bound (connect 2 s, pause 2 s, answers 5 s).
    /// </summary>
    private readonly TimeSpan _settleFor = settleFor ?? TimeSpan.FromSeconds(12);

    public MigrationSummary Run(MigrationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var refused = new Dictionary<string, int>();
        var pauses = new List<int>();
        var dropped = new List<int>();
        var phases = new MigrationPhases();
        int moved = 0;
        void Count(string reason)
        {
            var counted = MigrationReasons.Counted(reason);
            refused[counted] = refused.GetValueOrDefault(counted) + 1;
        }
        foreach (var r in plan.Refused)
        {
            counters.Refuse(r.Reason);
            Count(r.Reason);
        }
        // The next batch's prepare, started while this one moves when it goes to another peer (docs/design.md#the-pause).
        Task<List<(string Id, string Reason)>>? ahead = null;
        for (var b = 0; b < plan.Batches.Count; b++)
        {
            var batch = plan.Batches[b];
            var byId = batch.Sessions.ToDictionary(s => s.Id, StringComparer.Ordinal);
            phases.Batches++;
            var phaseStart = System.Diagnostics.Stopwatch.GetTimestamp();
            var prepared = ahead?.GetAwaiter().GetResult() ?? Prepare(batch.Peer, byId);
            ahead = null;
            foreach (var (id, reason) in prepared)
            {
                byId.Remove(id);
                counters.Refuse(reason);
                Count(reason);
            }
            if (byId.Count == 0)
            {
                continue;
            }
            var flows = byId.Values.SelectMany(s => s.InboundFlows()).ToList();
            phases.PrepareMs += System.Diagnostics.Stopwatch.GetElapsedTime(phaseStart).TotalMilliseconds;
            phaseStart = System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                movedOut(flows, MovedFlowChange.Moving);
            }
            catch (KernelFilterException)
            {
                foreach (var _ in byId.Values)
                {
                    counters.Refuse(MigrationReasons.FilterFailed);
                    Count(MigrationReasons.FilterFailed);
                }
                continue;
            }
            var droppedSince = System.Diagnostics.Stopwatch.GetTimestamp();
            phases.DropMs += System.Diagnostics.Stopwatch.GetElapsedTime(phaseStart, droppedSince).TotalMilliseconds;
            ahead = PrepareAhead(plan, b);
            counters.Started(byId.Count);
            // Sessions whose flows sit in moved_out: each leaves it on every path, an exception included (docs/design.md#stale-moved_out-elements).
            var unsettled = new Dictionary<string, ProxySession>(byId, StringComparer.Ordinal);
            var counted = new HashSet<string>(StringComparer.Ordinal);
            try
            {
                var stayed = new List<(ProxySession Session, string Reason)>();
                IReadOnlyList<MoveOutcome> outcomes;
                bool proxyGone = false;
                try
                {
                    outcomes = proxy.Move(batch.Peer, [.. byId.Keys]);
                }
                catch (MigrationProxyException)
                {
                    counters.ProxyError();
                    var reconciled = Reconcile(byId.Values);
                    proxyGone = reconciled is null;
                    outcomes = reconciled ?? [];
                }
                var droppedMs = (int)System.Diagnostics.Stopwatch.GetElapsedTime(droppedSince).TotalMilliseconds;
                phases.MoveMs += droppedMs;
                phaseStart = System.Diagnostics.Stopwatch.GetTimestamp();
                foreach (var outcome in outcomes)
                {
                    if (!byId.TryGetValue(outcome.Id, out var session) || !counted.Add(outcome.Id))
                    {
                        continue; // an id not asked for, or answered twice: the first answer stands
                    }
                    if (outcome.Moved)
                    {
                        moved++;
                        pauses.Add(outcome.PauseMs);
                        dropped.Add(droppedMs);
                        counters.Moved();
                    }
                    else
                    {
                        stayed.Add((session, outcome.Reason ?? MigrationReasons.ProxyFailed));
                    }
                }
                // An id the proxy did not answer was not moved by its word: it stays here.
                var unanswered = byId.Values.Where(s => !counted.Contains(s.Id)).ToList();
                stayed.AddRange(unanswered.Select(s => (s, MigrationReasons.ProxyFailed)));
                foreach (var (session, reason) in stayed)
                {
                    counted.Add(session.Id);
                    counters.Stayed(reason);
                    Count(reason);
                }
                var stayedIds = stayed.Select(x => x.Session.Id).ToHashSet(StringComparer.Ordinal);
                Settle(unsettled, [.. byId.Values.Where(s => !stayedIds.Contains(s.Id))], MovedFlowChange.Moved, resolved: false);
                // The proxy gone, its sessions moved or died with it: none comes back here, a new connection on a tuple may.
                Settle(unsettled, [.. stayed.Select(x => x.Session)], proxyGone ? MovedFlowChange.Moved : MovedFlowChange.Stayed, resolved: proxyGone);
                phases.SettleMs += System.Diagnostics.Stopwatch.GetElapsedTime(phaseStart).TotalMilliseconds;
            }
            finally
            {
                if (unsettled.Count > 0)
                {
                    SettleUnknown(unsettled, counted);
                }
            }
        }
        return new MigrationSummary(moved, refused, plan.OwnedHere, pauses, dropped, phases);
    }

    /// <summary>
    /// Takes <paramref name="sessions"/>' flows out of moved_out by <paramref name="change"/> (tried twice); counted as resolved
    /// when on a failure path, as left to the set's timeout when the kernel refused both times.
    /// </summary>
    private void Settle(Dictionary<string, ProxySession> unsettled, IReadOnlyList<ProxySession> sessions, MovedFlowChange change, bool resolved)
    {
        if (sessions.Count == 0)
        {
            return;
        }
        foreach (var s in sessions)
        {
            unsettled.Remove(s.Id);
        }
        var flows = sessions.SelectMany(s => s.InboundFlows()).ToList();
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                movedOut(flows, change);
                break;
            }
            catch (KernelFilterException) when (attempt == 1)
            {
            }
            catch (KernelFilterException)
            {
                counters.MovedOutLeftToExpire(sessions.Count);
                return;
            }
        }
        if (resolved)
        {
            counters.MovedOutResolvedOnFailure(sessions.Count);
        }
    }

    /// <summary>
    /// A batch that ended in an exception with flows still in moved_out: a fresh <c>list</c> decides (listed: stayed, back;
    /// the others moved, away), and without one every such session is taken as moved: never back here half-moved.
    /// </summary>
    private void SettleUnknown(Dictionary<string, ProxySession> unsettled, HashSet<string> counted)
    {
        var sessions = unsettled.Values.ToList();
        List<MoveOutcome>? outcomes = null;
        try
        {
            outcomes = Reconcile(sessions);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The batch's own exception goes on; this one only decides that the fate is unknown.
        }
        var stays = outcomes?.Where(o => !o.Moved).Select(o => o.Id).ToHashSet(StringComparer.Ordinal) ?? [];
        foreach (var s in sessions.Where(s => counted.Add(s.Id)))
        {
            // Done only on the proxy's word; a fate unknown counts as refused (proxy-failed), as with a proxy gone.
            if (outcomes is not null && !stays.Contains(s.Id))
            {
                counters.Moved();
            }
            else
            {
                counters.Stayed(MigrationReasons.ProxyFailed);
            }
        }
        Settle(unsettled, [.. sessions.Where(s => !stays.Contains(s.Id))], MovedFlowChange.Moved, resolved: true);
        Settle(unsettled, [.. sessions.Where(s => stays.Contains(s.Id))], MovedFlowChange.Stayed, resolved: true);
    }

    /// <summary>
    /// The prepare of the batch after <paramref name="b"/>, off this thread, when it goes to another peer: its latency is off
    /// the run and its capture starts one batch earlier (still before its own drop). To the same peer it waits: that
    /// peer's channel carries this batch's move. Null when there is no next batch or it waits.
    /// </summary>
    private Task<List<(string Id, string Reason)>>? PrepareAhead(MigrationPlan plan, int b)
    {
        if (b + 1 >= plan.Batches.Count || plan.Batches[b + 1].Peer.Equals(plan.Batches[b].Peer))
        {
            return null;
        }
        var next = plan.Batches[b + 1];
        var byId = next.Sessions.ToDictionary(s => s.Id, StringComparer.Ordinal);
        // A thread of its own (see MigrationCoordinator.TryRun): it blocks on l2proxy while this batch moves.
        return Task.Factory.StartNew(() => Prepare(next.Peer, byId), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>
    /// <c>prepare</c> before the drop (docs/design.md#the-pause): the peer captures from here on. The ids it
    /// answered <c>stayed</c> with their reasons; none when it failed or is an older l2proxy without it
    /// (counted as a proxy error): the batch goes on, its move prepares by itself.
    /// </summary>
    private List<(string Id, string Reason)> Prepare(System.Net.IPEndPoint peer, Dictionary<string, ProxySession> byId)
    {
        try
        {
            return [.. proxy.Prepare(peer, [.. byId.Keys])
                .Where(o => o.Reason is not null && byId.ContainsKey(o.Id))
                .DistinctBy(o => o.Id, StringComparer.Ordinal)
                .Select(o => (o.Id, o.Reason!))];
        }
        catch (MigrationProxyException)
        {
            counters.ProxyError();
            return [];
        }
    }

    /// <summary>After a failed move: sessions still listed stayed; the others moved. Null when the proxy cannot list either.</summary>
    private List<MoveOutcome>? Reconcile(IReadOnlyCollection<ProxySession> asked)
    {
        HashSet<string> still;
        var askedIds = asked.Select(s => s.Id).ToHashSet(StringComparer.Ordinal);
        var deadline = DateTime.UtcNow + _settleFor;
        try
        {
            while (true)
            {
                var listed = proxy.List().Where(s => askedIds.Contains(s.Id)).ToList();
                still = [.. listed.Select(s => s.Id)];
                // A session still paused may yet move (Go) or resume: its flows' fate waits for the proxy's decision.
                if (!listed.Any(s => s.Stays == MigrationReasons.NotEstablished) || DateTime.UtcNow >= deadline)
                {
                    break;
                }
                Thread.Sleep(TimeSpan.FromMilliseconds(Math.Min(200, _settleFor.TotalMilliseconds / 10)));
            }
        }
        catch (MigrationProxyException)
        {
            counters.ProxyError();
            return null;
        }
        return [.. asked.Select(s => still.Contains(s.Id)
            ? new MoveOutcome(s.Id, false, 0, MigrationReasons.ProxyFailed)
            : new MoveOutcome(s.Id, true, 0, null))];
    }
}
