using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using L2Balance.Lab.Cluster;

namespace L2Balance.Lab.Cli;

/// <summary>
/// <c>l2lab cluster-demo</c>: the README's main command. Three nodes (l2bal + l2proxy each) on one
/// segment, 60 client addresses, real SOCKS traffic; shows who serves whom, kills node 2 (both
/// daemons SIGKILLed and its link down), measures the time until its clients connect again, brings
/// it back and checks the three promises: the failed node is covered, nothing on a surviving node
/// is cut (neither by the failure nor by the hand-back), the load is spread evenly. Exit code 0 only
/// if every promise held; the summary also goes to artifacts/demo/cluster-TIMESTAMP.json.
/// </summary>
internal static class ClusterDemo
{
    private const int NodeCount = 3;
    private const int ClientCount = 60;
    private const int Victim = 2;

    /// <summary>Upper bound of the whole demo; each wait inside has its own shorter deadline.</summary>
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(170);

    private static readonly Stopwatch Clock = new();

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    public static async Task<int> RunAsync()
    {
        Clock.Restart();
        _ = ClusterBinaries.L2Bal;
        _ = LabBinaries.L2Proxy;
        using var bound = new CancellationTokenSource(Bound);
        var ct = bound.Token;

        Phase($"building the cluster lab: {NodeCount} nodes, {ClientCount} client addresses, one router, one target");
        await using var lab = await ClusterLab.CreateAsync(NodeCount, ClientCount).ConfigureAwait(false);
        foreach (var line in lab.DescribeTopology().Split('\n'))
        {
            Info(line);
        }

        var all = Enumerable.Range(1, NodeCount).ToArray();
        var survivors = all.Where(k => k != Victim).ToArray();
        var full = ClusterOps.Table(NodeCount, all);
        var home = lab.ClientAddresses.ToDictionary(a => a.ToString(), a => ClusterOps.OwnerOf(full, a));

        Phase($"starting l2bal (--health {ClusterOps.HealthUrl}) then l2proxy on the VIP, on every node; waiting for each to hold its share of {ClusterOps.Buckets} buckets");
        await Task.WhenAll(all.Select(k => ClusterOps.StartNodeAsync(lab, k, ct))).ConfigureAwait(false);

        var initial = await ClusterOps.WaitForSharesAsync(lab, all, TimeSpan.FromSeconds(40), Info, ct).ConfigureAwait(false);

        // Two long sessions and one UDP association homed on each node (by the hash mirror), so the
        // kill hits some (they die with their node) and spares the others (they must live on).
        var sessionSources = all.SelectMany(k => lab.ClientAddresses.Where(a => home[a.ToString()] == k).Take(2)).ToArray();
        var udpSources = all.SelectMany(k => lab.ClientAddresses.Where(a => home[a.ToString()] == k).Skip(2).Take(1)).ToArray();
        var echo = new IPEndPoint(ClusterLab.TargetAddress, TargetServers.TcpEchoPort);
        var udpEcho = new IPEndPoint(ClusterLab.TargetAddress, TargetServers.UdpEchoPort);
        using var stopTraffic = CancellationTokenSource.CreateLinkedTokenSource(ct);

        // The CONNECT streams: one per client address, a short step timeout so a CONNECT that lands on
        // the dead node is abandoned quickly and the next one (a fresh SYN) tries again; a client that
        // waits holds up only itself, so each node's rate in the timeline is that node's service.
        var stream = new TrafficGenerator(lab.Client, new TrafficOptions
        {
            Proxy = lab.ProxyEndPoint,
            Sources = lab.ClientAddresses,
            ConnectTarget = echo,
            MaxConnects = 400_000,
            ConnectStreamPerSource = true,
            StepTimeout = TimeSpan.FromMilliseconds(250),
            Duration = Bound,
            Stop = stopTraffic.Token,
            NodeOf = lab.NodeOf,
        });
        var sessions = Sessions(lab, sessionSources, udpSources, echo, udpEcho, stopTraffic.Token);

        Phase($"traffic: CONNECT+echo from each of the {ClientCount} client addresses in a stream of its own (250 ms step timeout), {sessionSources.Length} long echo sessions, {udpSources.Length} UDP ASSOCIATE sessions");
        var streamRun = stream.RunAsync(ct);
        var sessionsRun = sessions.RunAsync(ct);
        var outageSessions = (TrafficGenerator?)null;
        using var stopTicker = new CancellationTokenSource();
        var ticker = TickAsync(stream, () => [sessions, outageSessions], home, stopTicker.Token);

        await Task.Delay(TimeSpan.FromSeconds(3), ct).ConfigureAwait(false);
        var warm = stream.ConnectsSoFar;
        var mismatches = await ShowServedTableAsync(lab, warm, home, ct).ConfigureAwait(false);

        // The kill: the node vanishes (link down), both its daemons SIGKILLed.
        Phase($"killing node {Victim}: link down, SIGKILL l2bal (pid {lab.Balancer(Victim)!.Id}) and l2proxy (pid {lab.Proxy(Victim)!.Id})");
        // The deaths the victim's daemon declared in its life, read just before it is killed (a
        // daemon killed with SIGKILL answers nothing afterwards).
        var killedDaemonDeaths = (await ClusterOps.StatusAsync(lab, Victim, ct).ConfigureAwait(false))?.Count("peer-dead") ?? 0;
        var victims = home.Where(h => h.Value == Victim).Select(h => h.Key).ToHashSet();

        // The cover itself, measured as the failover bench does: from six of node 2's client
        // addresses a fresh TCP connect to the VIP every 10 ms (a SYN-ACK from whichever node owns
        // the address is an answer), started 300 ms before the kill and kept up until each is
        // answered again. The CONNECT stream's own gaps (below) add its pacing and timeouts.
        var killStream = 0.0;
        var probeSources = lab.ClientAddresses.Where(a => victims.Contains(a.ToString())).Take(6).ToArray();
        var (probeGaps, probeMissing) = await BenchFailover.KillAndProbeAsync(lab, probeSources, () =>
        {
            lab.LinkDown(Victim);

            // The kill instant: once the link-down has taken effect (`ip` has returned); CONNECTs
            // started while `ip` ran could still reach node 2 and would look like an instant cover.
            killStream = stream.ElapsedMs;
            lab.Balancer(Victim)!.Kill(LabSignals.Kill);
            lab.Proxy(Victim)!.Kill(LabSignals.Kill);
        }, ct).ConfigureAwait(false);
        Info(string.Create(CultureInfo.InvariantCulture,
            $"covered: a fresh connect from each of {probeSources.Length} addresses of node {Victim} is answered again after a median of {ClusterOps.Median(probeGaps):0} ms (max {probeGaps.DefaultIfEmpty(double.NaN).Max():0} ms){(probeMissing > 0 ? $", {probeMissing} not answered" : string.Empty)}"));

        Phase($"waiting for nodes {string.Join(" and ", survivors)} to cover node {Victim}'s buckets and for its {victims.Count} client addresses to connect again");
        var covered = await ClusterOps.WaitForSharesAsync(lab, survivors, TimeSpan.FromSeconds(20), Info, ct).ConfigureAwait(false);
        var reconnectDeadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (DateTime.UtcNow < reconnectDeadline && !AllReconnected(stream.ConnectsSoFar, victims, killStream))
        {
            await Task.Delay(200, ct).ConfigureAwait(false);
        }

        // Sessions started while node 2 is away: homed on node 2, held by the covering nodes; the
        // hand-back must not cut them.
        var outageSources = lab.ClientAddresses.Where(a => victims.Contains(a.ToString())).Skip(3).ToArray();
        outageSessions = Sessions(lab, outageSources.Take(4).ToArray(), outageSources.Skip(4).Take(2).ToArray(), echo, udpEcho, stopTraffic.Token);
        Phase($"node {Victim} is away: opening 4 long sessions and 2 UDP sessions from its client addresses (held by the covering nodes)");
        var outageRun = outageSessions.RunAsync(ct);
        var upDeadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < upDeadline && (outageSessions.Live.SessionsUp < 4 || outageSessions.Live.UdpReceived < 2))
        {
            await Task.Delay(100, ct).ConfigureAwait(false);
        }

        await Task.Delay(TimeSpan.FromSeconds(2), ct).ConfigureAwait(false);

        Phase($"node {Victim} returns: link up, start l2bal then l2proxy; waiting for its buckets to come back by hand-over");
        var rejoinStream = stream.ElapsedMs;
        lab.LinkUp(Victim);
        await ClusterOps.StartNodeAsync(lab, Victim, ct).ConfigureAwait(false);
        var returned = await ClusterOps.WaitForSharesAsync(lab, all, TimeSpan.FromSeconds(40), Info, ct).ConfigureAwait(false);
        Phase("after the hand-back: 3 s more traffic, then stop");
        await Task.Delay(TimeSpan.FromSeconds(3), ct).ConfigureAwait(false);
        await stopTraffic.CancelAsync().ConfigureAwait(false);
        var streamResult = await streamRun.ConfigureAwait(false);
        var sessionResult = await sessionsRun.ConfigureAwait(false);
        var outageResult = await outageRun.ConfigureAwait(false);
        await stopTicker.CancelAsync().ConfigureAwait(false);
        await ticker.ConfigureAwait(false);

        return Report(lab, streamResult, sessionResult, outageResult, home, victims, killStream, rejoinStream, mismatches, initial, covered, returned, killedDaemonDeaths, survivors.Length,
            new ProbeCover(probeGaps, probeMissing, probeSources.Length));
    }

    private static int Report(
        ClusterLab lab, TrafficResults stream, TrafficResults sessions, TrafficResults outage, Dictionary<string, int> home,
        HashSet<string> victims, double killStream, double rejoinStream, int mismatches,
        IReadOnlyDictionary<int, BalancerStatus> initial, IReadOnlyDictionary<int, BalancerStatus> covered, IReadOnlyDictionary<int, BalancerStatus> returned,
        long killedDaemonDeaths, int survivorsCount, ProbeCover probe)
    {
        var probeGaps = probe.Gaps;
        var probeMissing = probe.Missing;
        Phase("results");
        Info($"CONNECT stream: {stream.Summary()}");
        Info($"sessions:       {sessions.Summary()}");
        Info($"outage sessions: {outage.Summary()}");

        // Failed CONNECTs other than timeouts (a timeout is a SYN nobody answered: expected while a
        // bucket has no owner). A reset or refusal means some node answered a flow it should not have.
        var odd = stream.Connects.Where(c => c.Outcome is not (TrafficOutcome.Ok or TrafficOutcome.Timeout)).ToArray();
        foreach (var c in odd.Take(10))
        {
            var when = c.StartMs < killStream ? "before the kill" : c.StartMs < rejoinStream ? "while node 2 was away" : "after node 2 returned";
            Info(string.Create(CultureInfo.InvariantCulture,
                $"CONNECT {c.Outcome} from {c.Source} (home node {home[c.Source]}) at {c.StartMs:0}-{c.EndMs:0} ms, {when} (kill at {killStream:0} ms, return at {rejoinStream:0} ms): {c.Detail}"));
        }

        // Time to cover, per client address of the dead node: last success before the kill to the
        // first success after it (served by a survivor).
        var gaps = new List<double>();
        var fromKill = new List<double>();
        var notCovered = new List<string>();
        foreach (var source in victims.Order(StringComparer.Ordinal))
        {
            var records = stream.Connects.Where(c => c.Source == source && c.Outcome == TrafficOutcome.Ok).ToArray();
            var before = records.Where(c => c.EndMs <= killStream).Select(c => c.EndMs).DefaultIfEmpty(double.NaN).Max();
            var after = records.Where(c => c.EndMs > killStream && c.Node != Victim).Select(c => c.EndMs).DefaultIfEmpty(double.NaN).Min();
            if (double.IsNaN(after) || double.IsNaN(before))
            {
                notCovered.Add(source);
                continue;
            }

            gaps.Add(after - before);
            fromKill.Add(after - killStream);
        }

        var gapMedian = ClusterOps.Median(gaps);
        var gapMax = gaps.DefaultIfEmpty(double.NaN).Max();
        Info(string.Create(CultureInfo.InvariantCulture,
            $"SOCKS CONNECT stream, node {Victim}'s {gaps.Count} of {victims.Count} client addresses: last success before the kill -> first after: median {gapMedian:0} ms, max {gapMax:0} ms; from the kill: median {ClusterOps.Median(fromKill):0} ms, max {fromKill.DefaultIfEmpty(double.NaN).Max():0} ms"));

        // Sessions: those held by survivors must all live; node 2's own end with it (stated, not a failure).
        var survivorSessions = sessions.Sessions.Where(s => s.Node is { } n && n != Victim).ToArray();
        var survivorUdp = sessions.Udp.Where(u => u.Node is { } n && n != Victim).ToArray();
        var lostOnSurvivors = survivorSessions.Count(s => s.Break is not null) + survivorUdp.Count(u => u.ControlBreak is not null || u.SetupFailure is not null);
        var victimSessions = sessions.Sessions.Count(s => s.Node == Victim) + sessions.Udp.Count(u => u.Node == Victim);
        var unplaced = sessions.Sessions.Count(s => s.Node is null) + sessions.Udp.Count(u => u.Node is null);
        var lostOnRejoin = outage.Sessions.Count(s => s.Break is not null) + outage.Udp.Count(u => u.ControlBreak is not null || u.SetupFailure is not null);
        var outageOnVictim = outage.Sessions.Count(s => s.Node == Victim) + outage.Udp.Count(u => u.Node == Victim);
        foreach (var s in sessions.Sessions.Concat(outage.Sessions))
        {
            Info(string.Create(CultureInfo.InvariantCulture,
                $"session {s.Source,-13} node {s.Node?.ToString(CultureInfo.InvariantCulture) ?? "-"}: {s.Exchanges} echoes, {(s.Break is null ? "alive to the end" : $"ended {s.Break} at {s.BreakMs:0} ms ({s.Detail})")}"));
        }

        foreach (var u in sessions.Udp.Concat(outage.Udp))
        {
            Info(string.Create(CultureInfo.InvariantCulture,
                $"udp     {u.Source,-13} node {u.Node?.ToString(CultureInfo.InvariantCulture) ?? "-"}: {u.Received}/{u.Sent} echoed, longest gap {u.LongestGapMs:0} ms, control {(u.ControlBreak is null && u.SetupFailure is null ? "alive to the end" : $"{u.SetupFailure}{u.ControlBreak} ({u.Detail})")}"));
        }

        // Balance: buckets held per node, and the CONNECTs each node served before the kill.
        var beforeKill = stream.Connects.Where(c => c.Outcome == TrafficOutcome.Ok && c.EndMs <= killStream && c.Node is not null).ToArray();
        var balance = Enumerable.Range(1, NodeCount).ToDictionary(
            k => k.ToString(CultureInfo.InvariantCulture),
            k => new
            {
                BucketsHeld = initial[k].Held,
                BucketsWhileCovering = covered.TryGetValue(k, out var c) ? c.Held : 0,
                BucketsAfterReturn = returned[k].Held,
                ClientAddresses = home.Count(h => h.Value == k),
                ConnectsServed = beforeKill.Count(c => c.Node == k),
                ConnectShare = beforeKill.Length == 0 ? 0 : Math.Round((double)beforeKill.Count(c => c.Node == k) / beforeKill.Length, 4),
            });
        foreach (var (k, b) in balance)
        {
            Info(string.Create(CultureInfo.InvariantCulture,
                $"node {k}: buckets {b.BucketsHeld} -> {b.BucketsWhileCovering} while covering -> {b.BucketsAfterReturn} after return; {b.ClientAddresses} client addresses; served {b.ConnectsServed} CONNECTs before the kill ({b.ConnectShare:P1})"));
        }

        // Every peer any l2bal declared dead (its peer-dead counter, docs/status-json.md): the
        // survivors' and the returned daemon's at the end, the killed daemon's before the kill. The
        // kill accounts for two (nodes 1 and 3 see node 2 die). The rest are false: a live peer
        // declared dead, its buckets covered for a moment.
        var deaths = returned.Values.Sum(s => s.Count("peer-dead")) + killedDaemonDeaths;
        var falseDeaths = Math.Max(0, deaths - survivorsCount);
        Info($"peers declared dead: {deaths} times by all l2bal daemons; {survivorsCount} expected (node {Victim}'s death seen by each survivor), so {falseDeaths} false (a live peer's buckets covered for a moment; established flows are kept)");
        var share = ClusterOps.Buckets / (double)NodeCount;
        var promises = new List<(string Name, bool Held, string Detail)>
        {
            ("the served node of every client address matches `l2bal owner`", mismatches == 0, $"{mismatches} mismatches"),
            ("buckets evenly spread (each node B/N +-1)", initial.Values.All(s => Math.Abs(s.Held - share) <= 1), string.Join(", ", initial.Values.Select(s => s.Held))),
            ($"node {Victim}'s clients connect again (covered within 1 s, median)", notCovered.Count == 0 && gapMedian < 1000,
                string.Create(CultureInfo.InvariantCulture, $"median {gapMedian:0} ms, max {gapMax:0} ms, not covered: {(notCovered.Count == 0 ? "none" : string.Join(' ', notCovered))}")),
            ("no session lost on the surviving nodes", lostOnSurvivors == 0 && survivorSessions.Length + survivorUdp.Length > 0 && unplaced == 0,
                $"{lostOnSurvivors} lost of {survivorSessions.Length + survivorUdp.Length}; {unplaced} never placed"),
            ("no session lost on rejoin (sessions opened during the outage)", lostOnRejoin == 0 && outageOnVictim == 0 && outage.Sessions.Count + outage.Udp.Count == 6,
                $"{lostOnRejoin} lost of {outage.Sessions.Count + outage.Udp.Count}; {outageOnVictim} wrongly placed on node {Victim}"),
            ($"node {Victim} gets exactly its share back", returned.All(r => r.Value.Held == initial[r.Key].Held), string.Join(", ", returned.Values.Select(s => s.Held))),
        };

        Phase("summary");
        Info(string.Create(CultureInfo.InvariantCulture, $"time to cover:             median {ClusterOps.Median(probeGaps):0} ms, max {probeGaps.DefaultIfEmpty(double.NaN).Max():0} ms (a fresh connect every 10 ms from {probe.Sources} addresses of node {Victim}, last answer -> first answer)"));
        Info(string.Create(CultureInfo.InvariantCulture, $"SOCKS clients of node {Victim}: median {gapMedian:0} ms, max {gapMax:0} ms without an answer (the CONNECT stream's pacing and 250 ms step timeout included)"));
        Info($"sessions lost on survivors: {lostOnSurvivors} of {survivorSessions.Length + survivorUdp.Length} (node {Victim}'s own {victimSessions} ended with it, as expected)");
        Info($"false covers:               {falseDeaths} (peers wrongly declared dead, from the daemons' peer-dead counters)");
        Info($"sessions lost on rejoin:    {lostOnRejoin} of {outage.Sessions.Count + outage.Udp.Count}");
        Info($"balance (buckets):          {string.Join(", ", balance.Select(b => $"n{b.Key} {b.Value.BucketsHeld}"))}; CONNECTs served: {string.Join(", ", balance.Select(b => string.Create(CultureInfo.InvariantCulture, $"n{b.Key} {b.Value.ConnectShare:P1}")))}");
        foreach (var (name, held, detail) in promises)
        {
            Info($"{(held ? "HELD  " : "FAILED")} {name}: {detail}");
        }

        var path = ClusterOps.ArtifactPath("demo", "cluster");
        var summary = new
        {
            StartedUtc = stream.StartedUtc,
            Nodes = NodeCount,
            ClientAddresses = ClientCount,
            Victim,
            Kill = "link down + SIGKILL l2bal + SIGKILL l2proxy",
            ProbeCoverMs = new { Median = ClusterOps.Median(probeGaps), Max = probeGaps.DefaultIfEmpty(double.NaN).Max(), PerSource = probeGaps, NotAnswered = probeMissing },
            TimeToCoverMs = new { Median = gapMedian, Max = gapMax, FromKillMedian = ClusterOps.Median(fromKill), PerSource = gaps, NotCovered = notCovered },
            SessionsLostOnSurvivors = lostOnSurvivors,
            SessionsOnSurvivors = survivorSessions.Length + survivorUdp.Length,
            SessionsEndedWithVictim = victimSessions,
            SessionsLostOnRejoin = lostOnRejoin,
            SessionsOpenedDuringOutage = outage.Sessions.Count + outage.Udp.Count,
            OwnerMismatches = mismatches,
            PeersDeclaredDead = deaths,
            FalseCovers = falseDeaths,
            Balance = balance,
            Stream = new
            {
                Ok = stream.ConnectsOk,
                Total = stream.Connects.Count,
                Failures = stream.ConnectFailures.ToDictionary(f => f.Key.ToString(), f => f.Value),
                NotTimeouts = odd.Select(c => new { c.Source, Outcome = c.Outcome.ToString(), c.StartMs, c.EndMs, c.Detail }),
            },
            KillAtMs = killStream,
            ReturnAtMs = rejoinStream,
            Promises = promises.Select(p => new { p.Name, p.Held, p.Detail }),
            DurationS = Math.Round(Clock.Elapsed.TotalSeconds, 1),
        };
        File.WriteAllText(path, JsonSerializer.Serialize(summary, JsonOptions) + "\n");
        Info($"summary written to {path}");
        var plot = FailoverTimeline.Write(Path.ChangeExtension(path, ".png"), $"l2bal cluster demo: node {Victim} killed and returned", stream,
        [
            new TimelineMark(killStream, $"node {Victim} killed"),
            new TimelineMark(fromKill.Count == 0 ? double.NaN : killStream + fromKill.Max(), $"node {Victim}'s clients covered"),
            new TimelineMark(rejoinStream, $"node {Victim} returns"),
        ]);
        Info($"timeline plot written to {plot}");
        var failed = promises.Where(p => !p.Held).ToArray();
        Phase(failed.Length == 0 ? "all promises held; tearing down" : $"FAILED: {string.Join("; ", failed.Select(f => f.Name))}; tearing down");
        if (failed.Length > 0)
        {
            Console.WriteLine(lab.Describe());
        }

        return failed.Length == 0 ? 0 : 1;
    }

    /// <summary>The cover as the dense probe saw it: gap per probed address, how many never answered, how many probed.</summary>
    private sealed record ProbeCover(IReadOnlyList<double> Gaps, int Missing, int Sources);

    /// <summary>Long echo sessions and UDP associations from the given addresses, kept up until the stop.</summary>
    private static TrafficGenerator Sessions(ClusterLab lab, IPAddress[] tcp, IPAddress[] udp, IPEndPoint echo, IPEndPoint udpEcho, CancellationToken stop) =>
        new(lab.Client, new TrafficOptions
        {
            Proxy = lab.ProxyEndPoint,
            Sources = [],
            SessionSources = tcp,
            EchoTarget = echo,
            UdpSources = udp,
            UdpEchoTarget = udpEcho,
            StepTimeout = TimeSpan.FromSeconds(3),
            MinInterval = TimeSpan.FromMilliseconds(100),
            MaxInterval = TimeSpan.FromMilliseconds(200),
            Duration = Bound,
            Stop = stop,
            NodeOf = lab.NodeOf,
        });

    private static bool AllReconnected(IReadOnlyList<ConnectRecord> records, IReadOnlySet<string> victims, double killMs) =>
        victims.All(v => records.Any(r => r.Source == v && r.Outcome == TrafficOutcome.Ok && r.EndMs > killMs && r.Node != Victim));

    /// <summary>Prints which node served which client addresses, checked against <c>l2bal owner</c> on node 1; returns the mismatches.</summary>
    private static async Task<int> ShowServedTableAsync(ClusterLab lab, IReadOnlyList<ConnectRecord> records, Dictionary<string, int> home, CancellationToken ct)
    {
        Phase($"who serves whom ({records.Count} CONNECTs so far), checked against `l2bal owner ADDR` on node 1");
        var served = records.Where(r => r.Outcome == TrafficOutcome.Ok && r.Node is not null)
            .GroupBy(r => r.Source).ToDictionary(g => g.Key, g => g.Select(r => r.Node!.Value).Distinct().Order().ToArray());
        using var gate = new SemaphoreSlim(3);
        var owners = await Task.WhenAll(lab.ClientAddresses.Select(async a =>
        {
            await gate.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                return (Address: a.ToString(), Owner: await ClusterOps.OwnerAsync(lab, 1, a, ct).ConfigureAwait(false));
            }
            finally
            {
                gate.Release();
            }
        })).ConfigureAwait(false);
        for (var k = 1; k <= NodeCount; k++)
        {
            var mine = owners.Where(o => served.TryGetValue(o.Address, out var n) && n.Length == 1 && n[0] == k).Select(o => o.Address.Split('.')[^1]).ToArray();
            Info($"node {k} serves {mine.Length,2}: 198.18.64.{{{string.Join(',', mine)}}}");
        }

        var mismatches = 0;
        var transient = 0;
        foreach (var (address, owner) in owners)
        {
            served.TryGetValue(address, out var nodes);
            if (nodes is not [var node] || owner != node || home[address] != node)
            {
                // Ask again: a mismatch that is gone a moment later is a flap of node 1's view (a
                // peer wrongly declared dead for a few ms under CPU load), shown but kept apart.
                var again = await ClusterOps.OwnerAsync(lab, 1, IPAddress.Parse(address), ct).ConfigureAwait(false);
                var persistent = nodes is not [var n] || again != n || home[address] != n;
                mismatches += persistent ? 1 : 0;
                transient += persistent ? 0 : 1;
                Info($"{(persistent ? "MISMATCH" : "transient mismatch")} {address}: served by {(nodes is null ? "nobody yet" : string.Join('+', nodes))}, l2bal owner says {owner?.ToString(CultureInfo.InvariantCulture) ?? "?"} (asked again: {again?.ToString(CultureInfo.InvariantCulture) ?? "?"}), hash mirror says {home[address]}");
            }
        }

        Info($"{owners.Length} client addresses checked: {mismatches} mismatches{(transient > 0 ? $", {transient} transient (gone when asked again)" : string.Empty)}");
        return mismatches;
    }

    /// <summary>Live counters once a second: CONNECTs served per node, failures per home node, sessions alive, UDP echoes.</summary>
    private static async Task TickAsync(TrafficGenerator stream, Func<TrafficGenerator?[]> sessionGenerators, Dictionary<string, int> home, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
            {
                var records = stream.ConnectsSoFar;
                var ok = new int[NodeCount + 1];
                var failed = new int[NodeCount + 1];
                foreach (var r in records)
                {
                    if (r.Outcome == TrafficOutcome.Ok && r.Node is { } n && n <= NodeCount)
                    {
                        ok[n]++;
                    }
                    else if (r.Outcome != TrafficOutcome.Ok)
                    {
                        failed[home[r.Source]]++;
                    }
                }

                var gens = sessionGenerators().OfType<TrafficGenerator>().ToArray();
                var alive = gens.Sum(g => g.Live.SessionsUp - g.Live.SessionBreaks);
                var udpOk = gens.Sum(g => g.Live.UdpReceived);
                var udpSent = gens.Sum(g => g.Live.UdpSent);
                var perNode = string.Join("  ", Enumerable.Range(1, NodeCount).Select(k => $"n{k} {ok[k]}/{failed[k]}"));
                Console.WriteLine($"[{Clock.Elapsed.TotalSeconds,6:0.0} s]    live: connects ok/failed (failed by home node) {perNode} | sessions alive {alive} | udp echoes {udpOk}/{udpSent}");
            }
        }
        catch (OperationCanceledException)
        {
            // Stopped by the demo.
        }
    }

    private static void Phase(string text) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{Clock.Elapsed.TotalSeconds,6:0.0} s] == {text}"));

    private static void Info(string text) => Console.WriteLine($"             {text}");
}
