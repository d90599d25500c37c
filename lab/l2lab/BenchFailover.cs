using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using L2Balance.Lab.Cluster;

namespace L2Balance.Lab.Cli;

/// <summary>One fresh TCP connect of a dense probe: when it started and ended (ms on the bench clock) and whether a SYN-ACK came.</summary>
internal readonly record struct ProbeAttempt(double StartMs, double EndMs, bool Ok);

/// <summary>Time to cover for one setting: per-source gaps over all kills.</summary>
/// <param name="Name">The system and setting.</param>
/// <param name="Kills">Kills done.</param>
/// <param name="GapsMs">Per (kill, source): last success before the kill → first success after it.</param>
/// <param name="Uncovered">Sources that never succeeded after a kill within the bound.</param>
internal sealed record CoverResult(string Name, int Kills, IReadOnlyList<double> GapsMs, int Uncovered)
{
    public double MedianMs => ClusterOps.Median(GapsMs);

    public double MaxMs => GapsMs.DefaultIfEmpty(double.NaN).Max();

    /// <summary>Why there are no figures (a setting that never settled), or null.</summary>
    public string? Note { get; init; }
}

/// <summary>
/// <c>l2lab bench-failover [--kills N]</c>: time to cover a killed node for l2bal (default and fast
/// timing) against keepalived (VRRP) and ucarp (CARP) with a VIP on the same lab; balance from the
/// hash mirror and from real connections; buckets moved on loss and on return; l2bal's idle CPU.
/// Prints a table with ratios and writes artifacts/bench/failover-TIMESTAMP.json. Not a test: it
/// measures, it does not pass or fail (docs/conventions.md §27). Every loop is bounded in count and time.
/// </summary>
/// <remarks>
/// The probe: each affected client source starts a fresh TCP connect to VIP:1080 every 10 ms, each
/// with a 50 ms connect timeout, overlapping (a SYN-ACK from whichever node owns the flow is an answer). The gap per
/// source is its last answer before the kill to its first answer after it. Kill = the node's switch
/// port down (it vanishes from the segment) plus, for l2bal, SIGKILL of l2bal and l2proxy; for
/// keepalived and ucarp the master's port down only (their daemons keep running on the cut-off node,
/// which is what a dead link or a dead host looks like to the backup).
/// </remarks>
internal static class BenchFailover
{
    private const int Victim = 2;

    /// <summary>Kills of node 2's l2proxy alone (its l2bal lives), at the default timing.</summary>
    private const int ProxyKills = 5;
    private const int ProbePort = 1080;
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Idle CPU is a steady state: measured over 20 s (one clock tick is then 0.05 % of a core)
    /// once the daemons have run 5 s, past start-up's claims and the JIT's tier-up of the loop.
    /// </summary>
    private static readonly TimeSpan IdleWindow = TimeSpan.FromSeconds(20);

    private static readonly TimeSpan IdleSettle = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan CoverBound = TimeSpan.FromSeconds(10);
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
    private static readonly Stopwatch Clock = new();

    public static async Task<int> RunAsync(IReadOnlyList<string> args)
    {
        var kills = 5;
        double? soakSeconds = null;
        // The fastest setting that held 10-minute soaks under full load (docs/benchmarks.md#fast-timing-soaks).
        var fastInterval = 8;
        var fastDeadAfter = 3;
        for (var i = 0; i < args.Count; i++)
        {
            var value = i + 1 < args.Count ? args[i + 1] : null;
            switch (args[i])
            {
                case "--kills" when int.TryParse(value, CultureInfo.InvariantCulture, out var k) && k is >= 1 and <= 20:
                    kills = k;
                    i++;
                    break;
                case "--soak" when double.TryParse(value, CultureInfo.InvariantCulture, out var seconds) && seconds is >= 20 and <= 1800:
                    soakSeconds = seconds;
                    i++;
                    break;
                case "--fast-interval" when int.TryParse(value, CultureInfo.InvariantCulture, out var ms) && ms is >= 1 and <= 1000:
                    fastInterval = ms;
                    i++;
                    break;
                case "--fast-dead-after" when int.TryParse(value, CultureInfo.InvariantCulture, out var misses) && misses is >= 2 and <= 10:
                    fastDeadAfter = misses;
                    i++;
                    break;
                default:
                    Console.Error.WriteLine("usage: l2lab bench-failover [--kills 1-20] [--fast-interval MS] [--fast-dead-after K] [--soak 20-1800]");
                    return 2;
            }
        }

        Clock.Restart();
        var loadAtStart = File.ReadAllText("/proc/loadavg").Trim();
        Log($"load average at start: {loadAtStart} ({Environment.ProcessorCount} cores; a shared machine's load distorts every timing below)");
        using var bound = new CancellationTokenSource(TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(soakSeconds ?? 0));
        var ct = bound.Token;
        string[] fastArgs = ["--advert-interval", $"{fastInterval}ms", "--dead-after", $"{fastDeadAfter}"];
        var fastName = $"l2bal fast ({fastInterval} ms adverts, dead after {fastDeadAfter})";
        if (soakSeconds is { } soak)
        {
            return await SoakAsync(TimeSpan.FromSeconds(soak), fastArgs, fastName, ct).ConfigureAwait(false);
        }

        var keepalived = LabBinaries.Find("/usr/sbin/keepalived");
        var ucarp = LabBinaries.Find("/usr/sbin/ucarp");

        var hashBalance = HashBalance(10_000, 3);
        Log($"balance from the hash mirror, 10 000 client addresses over 3 nodes: {string.Join(", ", hashBalance.Select(b => string.Create(CultureInfo.InvariantCulture, $"n{b.Key} {b.Value:P2}")))}");

        var results = new List<CoverResult>();
        var l2balDefault = await L2BalAsync("l2bal default (40 ms adverts, dead after 3)", [], kills, details: true, ct).ConfigureAwait(false);
        results.Add(l2balDefault.Cover);
        if (l2balDefault.ProxyCover is { } proxyCover)
        {
            results.Add(proxyCover);
        }
        var l2balFast = await L2BalAsync(fastName, fastArgs, kills, details: false, ct).ConfigureAwait(false);
        results.Add(l2balFast.Cover);

        var skipped = new List<string>();
        if (keepalived is null)
        {
            skipped.Add("keepalived (not installed: apt-get install keepalived)");
        }
        else
        {
            results.Add(await TryVipAsync("keepalived default (VRRPv2, advert_int 1)", kills, (lab, node, dir) => StartKeepalived(lab, node, dir, keepalived, 2, "1"), ct).ConfigureAwait(false));
            results.Add(await TryVipAsync("keepalived fastest (VRRPv3, advert_int 0.01)", kills, (lab, node, dir) => StartKeepalived(lab, node, dir, keepalived, 3, "0.01"), ct).ConfigureAwait(false));
        }

        if (ucarp is null)
        {
            skipped.Add("ucarp (not installed: apt-get install ucarp)");
        }
        else
        {
            results.Add(await TryVipAsync("ucarp default (advbase 1, advskew 0/10)", kills, (lab, node, dir) => StartUcarp(lab, node, dir, ucarp, 1, node == 1 ? 0 : 10), ct).ConfigureAwait(false));
            // advbase 0 makes the advert interval advskew/256 s. 3/6 (12 ms adverts) is the fastest
            // tried; if it flaps (no single master) the row says so and 20/40 (78 ms adverts) follows.
            var fastest = await TryVipAsync("ucarp fastest (advbase 0, advskew 3/6)", kills, (lab, node, dir) => StartUcarp(lab, node, dir, ucarp, 0, node == 1 ? 3 : 6), ct).ConfigureAwait(false);
            results.Add(fastest);
            if (fastest.Kills == 0)
            {
                var fast = await TryVipAsync("ucarp fast (advbase 0, advskew 20/40)", kills, (lab, node, dir) => StartUcarp(lab, node, dir, ucarp, 0, node == 1 ? 20 : 40), ct).ConfigureAwait(false);
                results.Add(fast);
                if (fast.Kills == 0)
                {
                    // Whole-second adverts, but the backup takes over after one missed advert, not three.
                    results.Add(await TryVipAsync("ucarp fast (advbase 1, advskew 0/10, deadratio 1)", kills, (lab, node, dir) => StartUcarp(lab, node, dir, ucarp, 1, node == 1 ? 0 : 10, deadRatio: 1), ct).ConfigureAwait(false));
                }
            }
        }

        Console.WriteLine();
        Console.WriteLine("time to cover a killed node (gap per affected client source; a connect started every 10 ms, 50 ms timeout each)");
        Console.WriteLine($"{"system / setting",-46} {"kills",5} {"samples",7} {"median ms",10} {"max ms",8} {"l2bal default vs",17} {"l2bal fast vs",14}");
        foreach (var r in results)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Name,-46} {r.Kills,5} {r.GapsMs.Count,7} {r.MedianMs,10:0} {r.MaxMs,8:0} {Ratio(r, l2balDefault.Cover),17} {Ratio(r, l2balFast.Cover),14}{(r.Uncovered > 0 ? $"  ({r.Uncovered} never covered)" : string.Empty)}{(r.Note is null ? string.Empty : $"  {r.Note}")}"));
        }

        Console.WriteLine("(ratio column: this row's median / l2bal's median; > 1 means l2bal covers faster)");
        var d = l2balDefault;
        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"balance, hash mirror (10 000 addresses): {string.Join(", ", hashBalance.Select(b => $"n{b.Key} {b.Value:P2}"))} (target 33.33 % +- 2 %)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"balance, real CONNECTs ({d.ConnectsTotal} from 60 addresses): {string.Join(", ", d.ConnectShare.Select(b => $"n{b.Key} {b.Value:P1}"))}; addresses per node {string.Join(", ", d.AddressesPerNode.Select(b => $"n{b.Key} {b.Value}"))}"));
        Console.WriteLine($"buckets moved on loss of node {Victim}: {d.MovedOnLoss} (its share: {d.VictimShare}); on return: {d.MovedOnReturn}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"l2bal idle CPU, % of one core per node (20 s, SOCKS5 health probe every 100 ms): default {string.Join(" ", d.IdleCpu.Select(c => $"{c:0.00}"))}; fast {string.Join(" ", l2balFast.IdleCpu.Select(c => $"{c:0.00}"))} (target <= 1 % at default)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"l2bal idle CPU without a health probe (l2bal's default), default timing: {string.Join(" ", d.IdleCpuNoProbe.Select(c => $"{c:0.00}"))}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"l2bal CPU under load (default timing, {d.LoadConnects} CONNECTs in 10 s), % of one core per node: {string.Join(" ", d.LoadCpu.Select(c => $"{c:0.00}"))}; the proxies meanwhile: {string.Join(" ", d.LoadProxyCpu.Select(c => $"{c:0.0}"))}"));
        if (d.FilterCost is { } fc)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"filter cost, one client's bulk TCP through node 1's proxy, medians: l2bal alone {fc.AloneMedian:0.00} Gbit/s vs the same cluster-MAC frames with no filter {fc.NoFilterMedian:0.00}: {fc.CostPercent:0.0} % (target <= 5 %); conntrack's part: {fc.ConntrackCostPercent:0.0} %"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  against the VIP as a plain unicast address ({fc.PlainMedian:0.00} Gbit/s): l2bal alone {fc.AloneVsPlainPercent:0.0} %, the whole cluster ({fc.FilteredMedian:0.00} Gbit/s; the other nodes' flooded copies on these shared cores) {fc.ClusterVsPlainPercent:0.0} %"));
        }
        Console.WriteLine($"load average: start {loadAtStart}, end {File.ReadAllText("/proc/loadavg").Trim()} ({Environment.ProcessorCount} cores)");
        foreach (var s in skipped)
        {
            Console.WriteLine($"skipped: {s}");
        }

        var path = ClusterOps.ArtifactPath("bench", "failover");
        var json = new
        {
            StartedUtc = DateTimeOffset.UtcNow - Clock.Elapsed,
            Probe = "fresh TCP connect to VIP:1080 started every 10 ms per affected source (overlapping), 50 ms connect timeout each",
            Kill = "l2bal: switch port of node 2 down + SIGKILL l2bal + SIGKILL l2proxy (proxy killed: SIGKILL of node 2's l2proxy alone); keepalived/ucarp: switch port of the master down",
            Cover = results.Select(r => new { r.Name, r.Kills, Samples = r.GapsMs.Count, r.MedianMs, r.MaxMs, r.Uncovered, r.Note, r.GapsMs }),
            LoadAverageAtStart = loadAtStart,
            LoadAverageAtEnd = File.ReadAllText("/proc/loadavg").Trim(),
            RatioToL2BalDefault = results.ToDictionary(r => r.Name, r => r.MedianMs / l2balDefault.Cover.MedianMs),
            RatioToL2BalFast = results.ToDictionary(r => r.Name, r => r.MedianMs / l2balFast.Cover.MedianMs),
            HashBalance10000 = hashBalance,
            ConnectShare = d.ConnectShare,
            ConnectsTotal = d.ConnectsTotal,
            AddressesPerNode = d.AddressesPerNode,
            BucketsMovedOnLoss = d.MovedOnLoss,
            BucketsMovedOnReturn = d.MovedOnReturn,
            VictimShare = d.VictimShare,
            IdleCpuPercentDefault = d.IdleCpu,
            IdleCpuPercentFast = l2balFast.IdleCpu,
            IdleCpuPercentDefaultNoProbe = d.IdleCpuNoProbe,
            LoadCpuPercentDefault = d.LoadCpu,
            LoadProxyCpuPercent = d.LoadProxyCpu,
            LoadConnects = d.LoadConnects,
            FilterClusterGbit = d.FilterCost?.FilteredGbit,
            FilterAloneGbit = d.FilterCost?.AloneGbit,
            FilterNoFilterGbit = d.FilterCost?.NoFilterGbit,
            FilterNoFilterConntrackGbit = d.FilterCost?.NoFilterConntrackGbit,
            FilterPlainGbit = d.FilterCost?.PlainGbit,
            FilterCostPercent = d.FilterCost?.CostPercent,
            FilterConntrackCostPercent = d.FilterCost?.ConntrackCostPercent,
            FilterAloneVsPlainPercent = d.FilterCost?.AloneVsPlainPercent,
            FilterClusterVsPlainPercent = d.FilterCost?.ClusterVsPlainPercent,
            FalseDeathsDefault = d.FalseDeaths,
            FalseDeathsFast = l2balFast.FalseDeaths,
            Skipped = skipped,
            DurationS = Math.Round(Clock.Elapsed.TotalSeconds, 1),
        };
        File.WriteAllText(path, JsonSerializer.Serialize(json, JsonOptions) + "\n");
        Console.WriteLine($"written to {path} ({Clock.Elapsed.TotalSeconds:0} s in all)");
        return 0;
    }

    /// <summary>
    /// <c>--soak SECONDS</c>: the fast timing for the whole length with every proxy under load;
    /// prints and writes the false covers seen.
    /// </summary>
    private static async Task<int> SoakAsync(TimeSpan length, string[] fastArgs, string fastName, CancellationToken ct)
    {
        var rows = new List<SoakResult>
        {
            await BenchFailoverLoad.SoakAsync(length, fastArgs, fastName, Log, ct).ConfigureAwait(false),
        };
        Console.WriteLine();
        Console.WriteLine("soak: false covers (\"peer is dead\" with nothing killed) with every proxy under load");
        foreach (var r in rows)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Setting}: {r.Seconds:0} s, false covers {r.FalseDeaths}, stalls {r.Stalls}, unhealthy {r.Unhealthy}, released when declared dead {r.Fenced}, ownership changes {r.OwnershipChanges}, CONNECTs ok {r.ConnectsOk} failed {r.ConnectsFailed}, bulk {r.BulkGbit:0.00} Gbit/s, l2bal CPU {string.Join(" ", r.BalancerCpu.Select(c => $"{c:0.00}"))} %, proxies {string.Join(" ", r.ProxyCpu.Select(c => $"{c:0.0}"))} %, load {r.LoadAverage}"));
            foreach (var cause in r.Causes.Concat(r.StartUp))
            {
                Console.WriteLine($"  {cause}");
            }
        }
        var path = ClusterOps.ArtifactPath("bench", "failover-soak");
        File.WriteAllText(path, JsonSerializer.Serialize(new { StartedUtc = DateTimeOffset.UtcNow - Clock.Elapsed, Soak = rows }, JsonOptions) + "\n");
        Console.WriteLine($"written to {path} ({Clock.Elapsed.TotalSeconds:0} s in all)");
        return 0;
    }

    private static string Ratio(CoverResult row, CoverResult l2bal) =>
        double.IsNaN(row.MedianMs) || double.IsNaN(l2bal.MedianMs) || l2bal.MedianMs <= 0
            ? "-"
            : string.Create(CultureInfo.InvariantCulture, $"{row.MedianMs / l2bal.MedianMs:0.0}x");

    /// <summary>Per-node share of <paramref name="count"/> client addresses (198.19.0.0 upwards) with every node up.</summary>
    private static Dictionary<int, double> HashBalance(int count, int nodes)
    {
        var table = ClusterOps.Table(nodes, Enumerable.Range(1, nodes));
        var counts = new int[nodes + 1];
        for (var i = 0; i < count; i++)
        {
            counts[ClusterOps.OwnerOf(table, new IPAddress([198, 19, (byte)(i >> 8), (byte)i]))]++;
        }

        return Enumerable.Range(1, nodes).ToDictionary(k => k, k => Math.Round(counts[k] / (double)count, 4));
    }

    private sealed record L2BalRun(
        CoverResult Cover, Dictionary<int, double> ConnectShare, int ConnectsTotal, Dictionary<int, int> AddressesPerNode,
        int MovedOnLoss, int MovedOnReturn, int VictimShare, double[] IdleCpu, int FalseDeaths,
        double[] LoadCpu, double[] LoadProxyCpu, int LoadConnects, FilterCost? FilterCost, double[] IdleCpuNoProbe, CoverResult? ProxyCover);

    private static async Task<L2BalRun> L2BalAsync(string name, string[] balancerArgs, int kills, bool details, CancellationToken ct)
    {
        Log($"{name}: building a 3-node lab");
        await using var lab = await ClusterLab.CreateAsync(3, 60).ConfigureAwait(false);
        int[] all = [1, 2, 3];
        int[] survivors = [1, 3];
        var ledger = new DeathLedger();
        await Task.WhenAll(all.Select(k => ClusterOps.StartNodeAsync(lab, k, ct, balancerArgs))).ConfigureAwait(false);
        var before = await ClusterOps.WaitForSharesAsync(lab, all, TimeSpan.FromSeconds(60), Progress, ct).ConfigureAwait(false);

        Log($"{name}: idle CPU of each l2bal over {IdleWindow.TotalSeconds:0} s, after {IdleSettle.TotalSeconds:0} s of settling");
        await Task.Delay(IdleSettle, ct).ConfigureAwait(false);
        var idle = await BenchFailoverLoad.CpuAsync(all.Select(k => lab.Balancer(k)!.Id).ToArray(), IdleWindow, ct).ConfigureAwait(false);
        Log(string.Create(CultureInfo.InvariantCulture, $"{name}: idle CPU % of a core: {string.Join(" ", idle.Select(c => $"{c:0.00}"))}"));
        double[] idleNoProbe = [];
        if (details)
        {
            // l2bal's own default has no health probe: the same window with every l2bal restarted without it.
            await RestartBalancersAsync(lab, all, [.. balancerArgs, "--health", "none"], ledger, ct).ConfigureAwait(false);
            await Task.Delay(IdleSettle, ct).ConfigureAwait(false);
            idleNoProbe = await BenchFailoverLoad.CpuAsync(all.Select(k => lab.Balancer(k)!.Id).ToArray(), IdleWindow, ct).ConfigureAwait(false);
            Log(string.Create(CultureInfo.InvariantCulture, $"{name}: idle CPU % of a core without the health probe: {string.Join(" ", idleNoProbe.Select(c => $"{c:0.00}"))}"));
            await RestartBalancersAsync(lab, all, balancerArgs, ledger, ct).ConfigureAwait(false);
        }

        var full = ClusterOps.Table(3, all);
        var home = lab.ClientAddresses.ToDictionary(a => a, a => ClusterOps.OwnerOf(full, a));
        var share = new Dictionary<int, double>();
        var total = 0;
        double[] loadCpu = [], loadProxyCpu = [];
        if (details)
        {
            Log($"{name}: 10 s of real CONNECTs from all 60 addresses, 12 at a time; CPU of l2bal and the proxies meanwhile");
            var pids = all.Select(k => lab.Balancer(k)!.Id).Concat(all.Select(k => lab.Proxy(k)!.Id)).ToArray();
            var run = new TrafficGenerator(lab.Client, new TrafficOptions
            {
                Proxy = lab.ProxyEndPoint,
                Sources = lab.ClientAddresses,
                ConnectTarget = new IPEndPoint(ClusterLab.TargetAddress, TargetServers.TcpEchoPort),
                ConnectConcurrency = 12,
                MaxConnects = 200_000,
                Duration = TimeSpan.FromSeconds(10),
                NodeOf = lab.NodeOf,
            }).RunAsync(ct);
            await Task.Delay(1000, ct).ConfigureAwait(false);
            var cpu = await BenchFailoverLoad.CpuAsync(pids, TimeSpan.FromSeconds(8), ct).ConfigureAwait(false);
            loadCpu = cpu[..3];
            loadProxyCpu = cpu[3..];
            var traffic = await run.ConfigureAwait(false);
            Log($"{name}: {traffic.Summary()}");
            Log(string.Create(CultureInfo.InvariantCulture, $"{name}: CPU under load, l2bal {string.Join(" ", loadCpu.Select(c => $"{c:0.00}"))} %, proxies {string.Join(" ", loadProxyCpu.Select(c => $"{c:0.0}"))} %"));
            var ok = traffic.Connects.Where(c => c.Outcome == TrafficOutcome.Ok && c.Node is not null).ToArray();
            total = ok.Length;
            share = all.ToDictionary(k => k, k => ok.Length == 0 ? 0 : Math.Round(ok.Count(c => c.Node == k) / (double)ok.Length, 4));
        }

        var sources = lab.ClientAddresses.Where(a => home[a] == Victim).Take(6).ToArray();
        var gaps = new List<double>();
        var uncovered = 0;
        int movedOnLoss = 0, movedOnReturn = 0;
        for (var kill = 1; kill <= kills; kill++)
        {
            await ledger.SettleAsync(lab, [Victim], ct).ConfigureAwait(false);
            var (killGaps, missing) = await KillAndProbeAsync(lab, sources, () =>
            {
                lab.LinkDown(Victim);
                lab.Balancer(Victim)!.Kill(LabSignals.Kill);
                lab.Proxy(Victim)!.Kill(LabSignals.Kill);
            }, ct).ConfigureAwait(false);
            gaps.AddRange(killGaps);
            uncovered += missing;
            var covered = await ClusterOps.WaitForSharesAsync(lab, survivors, TimeSpan.FromSeconds(20), Progress, ct).ConfigureAwait(false);
            Log(string.Create(CultureInfo.InvariantCulture, $"{name}: kill {kill}: gaps {string.Join(" ", killGaps.Select(g => $"{g:0}"))} ms{(missing > 0 ? $", {missing} never covered" : string.Empty)}"));
            lab.LinkUp(Victim);
            await ClusterOps.StartNodeAsync(lab, Victim, ct, balancerArgs).ConfigureAwait(false);
            var returned = await ClusterOps.WaitForSharesAsync(lab, all, TimeSpan.FromSeconds(60), Progress, ct).ConfigureAwait(false);
            if (kill == 1)
            {
                movedOnLoss = survivors.Sum(k => covered[k].Held - before[k].Held);
                movedOnReturn = survivors.Sum(k => covered[k].Held - returned[k].Held);
            }
        }

        var timelineKills = 0;
        if (details)
        {
            await ledger.SettleAsync(lab, [Victim], ct).ConfigureAwait(false);
            await TimelineAsync(lab, name, balancerArgs, ct).ConfigureAwait(false);
            timelineKills = 1;
        }

        CoverResult? proxyCover = null;
        if (details)
        {
            // Failure matrix M1 timed: node 2's l2proxy SIGKILLed while its l2bal lives. The next
            // health probe is refused (nothing listens), the node advertises itself unhealthy and
            // the survivors cover; the proxy is then restarted and the node takes its share back.
            var proxyGaps = new List<double>();
            var proxyUncovered = 0;
            for (var kill = 1; kill <= ProxyKills; kill++)
            {
                var killedAt = DateTime.MinValue;
                var mark = (await ClusterOps.StatusAsync(lab, Victim, ct).ConfigureAwait(false))?.LastEventSeq ?? 0;
                var (killGaps, missing) = await KillAndProbeAsync(lab, sources, () =>
                {
                    killedAt = DateTime.UtcNow;
                    lab.Proxy(Victim)!.Kill(LabSignals.Kill);
                }, ct).ConfigureAwait(false);
                proxyGaps.AddRange(killGaps);
                proxyUncovered += missing;
                await ClusterOps.WaitForSharesAsync(lab, survivors, TimeSpan.FromSeconds(20), Progress, ct).ConfigureAwait(false);
                var seen = Detection(await ClusterOps.StatusAsync(lab, Victim, ct).ConfigureAwait(false), mark, killedAt);
                Log(string.Create(CultureInfo.InvariantCulture, $"{name}: l2proxy kill {kill}: gaps {string.Join(" ", killGaps.Select(g => $"{g:0}"))} ms{(missing > 0 ? $", {missing} never covered" : string.Empty)}; {seen}"));
                ClusterOps.StartProxy(lab, Victim);
                await ClusterOps.WaitForSharesAsync(lab, all, TimeSpan.FromSeconds(60), Progress, ct).ConfigureAwait(false);
            }
            proxyCover = new CoverResult("l2bal default, l2proxy killed (probe 100 ms)", ProxyKills, proxyGaps, proxyUncovered);
            Log(string.Create(CultureInfo.InvariantCulture, $"{proxyCover.Name}: median {proxyCover.MedianMs:0} ms, max {proxyCover.MaxMs:0} ms over {proxyGaps.Count} samples"));
        }

        await ledger.SettleAsync(lab, all, ct).ConfigureAwait(false);
        // Each kill accounts for two verdicts (each survivor sees the victim die); the rest are false covers.
        var falseDeaths = (int)Math.Max(0, ledger.Deaths - (2 * (kills + timelineKills)));
        Log($"{name}: peers declared dead beyond the kills' own (false covers): {falseDeaths}");
        if (falseDeaths > 0)
        {
            // Every verdict, the kills' own included, so the extra ones can be told apart by time and cause.
            foreach (var line in ledger.Verdicts)
            {
                Log($"{name}:   {line}");
            }
        }
        FilterCost? filterCost = null;
        if (details)
        {
            // Last: it stops l2bal on every node.
            filterCost = await BenchFailoverLoad.FilterCostAsync(lab, lab.ClientAddresses.First(a => home[a] == 1), balancerArgs, Log, ct).ConfigureAwait(false);
        }
        var cover = new CoverResult(name, kills, gaps, uncovered);
        Log(string.Create(CultureInfo.InvariantCulture, $"{name}: median {cover.MedianMs:0} ms, max {cover.MaxMs:0} ms over {gaps.Count} samples"));
        return new L2BalRun(cover, share, total, all.ToDictionary(k => k, k => home.Count(h => h.Value == k)), movedOnLoss, movedOnReturn, before[Victim].Held, idle, falseDeaths,
            loadCpu, loadProxyCpu, total, filterCost, idleNoProbe, proxyCover);
    }

    private static async Task RestartBalancersAsync(ClusterLab lab, int[] nodes, string[] balancerArgs, DeathLedger ledger, CancellationToken ct)
    {
        await ledger.SettleAsync(lab, nodes, ct).ConfigureAwait(false);
        await ClusterOps.StopBalancersAsync(lab, nodes).ConfigureAwait(false);
        await ClusterOps.StartBalancersAsync(lab, nodes, balancerArgs, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// When node 2's l2bal turned unhealthy after an l2proxy kill at <paramref name="killedAt"/>,
    /// from the time of its first <c>state</c> event after <paramref name="mark"/> (same clock: one
    /// machine), and what its probe saw: the daemon's part of the gap.
    /// </summary>
    private static string Detection(BalancerStatus? status, long mark, DateTime killedAt)
    {
        if (status is null)
        {
            return "l2bal did not answer status";
        }
        var turn = status.EventsAfter(mark).FirstOrDefault(e => e.Kind == "state" && e.Text("state") == "unhealthy");
        return turn is null
            ? "l2bal recorded no unhealthy turn"
            : string.Create(CultureInfo.InvariantCulture, $"l2bal saw it after {(turn.Time - killedAt).TotalMilliseconds:0} ms ({turn.Text("health")}: {turn.Text("detail")})");
    }

    /// <summary>
    /// One more kill of node 2, not counted in the cover figures, under a SOCKS CONNECT stream from
    /// every client address, drawn as a timeline: CONNECTs per node per 100 ms with the kill, the
    /// cover (the last of node 2's clients served by a survivor) and the return marked.
    /// </summary>
    private static async Task TimelineAsync(ClusterLab lab, string name, string[] balancerArgs, CancellationToken ct)
    {
        int[] all = [1, 2, 3];
        var home = lab.ClientAddresses.ToDictionary(a => a.ToString(), a => ClusterOps.OwnerOf(ClusterOps.Table(3, all), a));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var generator = new TrafficGenerator(lab.Client, new TrafficOptions
        {
            Proxy = lab.ProxyEndPoint,
            Sources = lab.ClientAddresses,
            ConnectTarget = new IPEndPoint(ClusterLab.TargetAddress, TargetServers.TcpEchoPort),
            ConnectStreamPerSource = true,
            MaxConnects = 200_000,
            Duration = TimeSpan.FromSeconds(90),
            Stop = stop.Token,
            NodeOf = lab.NodeOf,
        });
        var run = generator.RunAsync(ct);
        await Task.Delay(2000, ct).ConfigureAwait(false);
        lab.LinkDown(Victim);
        lab.Balancer(Victim)!.Kill(LabSignals.Kill);
        lab.Proxy(Victim)!.Kill(LabSignals.Kill);
        var killMs = generator.ElapsedMs;
        await ClusterOps.WaitForSharesAsync(lab, [1, 3], TimeSpan.FromSeconds(20), Progress, ct).ConfigureAwait(false);
        await Task.Delay(2000, ct).ConfigureAwait(false);
        lab.LinkUp(Victim);
        var returnMs = generator.ElapsedMs;
        await ClusterOps.StartNodeAsync(lab, Victim, ct, balancerArgs).ConfigureAwait(false);
        await ClusterOps.WaitForSharesAsync(lab, all, TimeSpan.FromSeconds(60), Progress, ct).ConfigureAwait(false);
        await Task.Delay(2000, ct).ConfigureAwait(false);
        await stop.CancelAsync().ConfigureAwait(false);
        var traffic = await run.ConfigureAwait(false);
        var coveredMs = home.Where(h => h.Value == Victim)
            .Select(h => traffic.Connects.Where(c => c.Source == h.Key && c.Outcome == TrafficOutcome.Ok && c.StartMs >= killMs && c.Node != Victim)
                .Select(c => c.EndMs).DefaultIfEmpty(double.NaN).Min())
            .DefaultIfEmpty(double.NaN).Max();
        var plot = FailoverTimeline.Write(Path.ChangeExtension(ClusterOps.ArtifactPath("bench", "failover-timeline"), ".png"),
            $"{name}: node {Victim} killed (link down, SIGKILL) and returned", traffic,
            [
                new TimelineMark(killMs, $"node {Victim} killed"),
                new TimelineMark(coveredMs, $"node {Victim}'s clients covered"),
                new TimelineMark(returnMs, $"node {Victim} returns"),
            ]);
        Log($"{name}: timeline kill: {traffic.Summary()}; plot written to {plot}");
    }

    /// <summary>
    /// Probes from every source for 300 ms, runs <paramref name="kill"/>, and keeps probing until
    /// every source has had an answer after it (bounded by <see cref="CoverBound"/>). Returns the gap
    /// per covered source and the number never covered.
    /// </summary>
    internal static async Task<(List<double> Gaps, int Uncovered)> KillAndProbeAsync(ClusterLab lab, IReadOnlyList<IPAddress> sources, Action kill, CancellationToken ct)
    {
        if (!Clock.IsRunning)
        {
            Clock.Start(); // called from the demo: the bench's clock has not run yet
        }
        var target = new IPEndPoint(ClusterLab.VipAddress, ProbePort);
        var killMs = double.MaxValue;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stop.CancelAfter(CoverBound + TimeSpan.FromSeconds(1));
        var probes = sources.Select(s => Task.Run(() => ProbeAsync(lab.Client, s, target, () => Volatile.Read(ref killMs), stop.Token), CancellationToken.None)).ToArray();
        // Plus a random part of up to one health interval: a node turns healthy on a probe and the
        // bench sees that a fixed delay later, so a fixed wait put every l2proxy kill at the same
        // phase of the 100 ms probe schedule (docs/benchmarks.md#cover-when-only-the-proxy-dies).
        // A random phase gives the detection time an operator would see.
        await Task.Delay(300 + Random.Shared.Next(100), ct).ConfigureAwait(false);
        // The kill instant is when the link-down has taken effect (`ip` returned), not when it was
        // asked for: spawning `ip` takes 5-100 ms on a loaded machine, and connects started in that
        // window still reach the node and would count as an instant cover.
        kill();
        Volatile.Write(ref killMs, Clock.Elapsed.TotalMilliseconds);
        var attempts = await Task.WhenAll(probes).ConfigureAwait(false);
        var gaps = new List<double>();
        var uncovered = 0;
        foreach (var list in attempts)
        {
            var last = list.Where(a => a.Ok && a.EndMs <= killMs).Select(a => a.EndMs).DefaultIfEmpty(double.NaN).Max();
            // An answer after the kill counts only from a connect started after it: a SYN-ACK already
            // in flight at the kill says nothing about the cover.
            var first = list.Where(a => a.Ok && a.StartMs >= killMs).Select(a => a.EndMs).DefaultIfEmpty(double.NaN).Min();
            if (double.IsNaN(first))
            {
                uncovered++;
            }
            else
            {
                gaps.Add(first - (double.IsNaN(last) ? killMs : last));
            }
        }

        return (gaps, uncovered);
    }

    /// <summary>
    /// A fresh TCP connect from <paramref name="source"/> started every 10 ms, each with a 50 ms
    /// timeout, overlapping (up to five in flight), until one started after the kill succeeds or
    /// the stop. Overlapping keeps the resolution at 10 ms: a SYN dropped just before the cover is
    /// retransmitted only after 1 s, so the first answer comes from a connect started after the
    /// cover, and with one attempt at a time that start waited for the previous timeout. Bounded:
    /// at most 2 000 attempts.
    /// </summary>
    private static async Task<List<ProbeAttempt>> ProbeAsync(LabHost client, IPAddress source, IPEndPoint target, Func<double> killMs, CancellationToken stop)
    {
        var attempts = new List<ProbeAttempt>();
        var inFlight = new List<Task<ProbeAttempt>>();
        var started = 0;
        var covered = false;
        var next = Clock.Elapsed;
        while (!stop.IsCancellationRequested && started < 2000 && !covered)
        {
            inFlight.Add(AttemptAsync(client, source, target, stop));
            started++;
            foreach (var done in inFlight.Where(t => t.IsCompleted).ToList())
            {
                var attempt = await done.ConfigureAwait(false);
                attempts.Add(attempt);
                covered |= attempt.Ok && attempt.StartMs >= killMs();
                inFlight.Remove(done);
            }

            next += ProbeInterval;
            var wait = next - Clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(wait, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
            else
            {
                next = Clock.Elapsed; // late (a loaded machine): no burst to catch up
            }
        }

        attempts.AddRange(await Task.WhenAll(inFlight).ConfigureAwait(false));
        return attempts;
    }

    private static async Task<ProbeAttempt> AttemptAsync(LabHost client, IPAddress source, IPEndPoint target, CancellationToken stop)
    {
        var startMs = Clock.Elapsed.TotalMilliseconds;
        var ok = false;
        using (var socket = client.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop))
        {
            timeout.CancelAfter(ProbeTimeout);
            try
            {
                socket.Bind(new IPEndPoint(source, 0));
                await socket.ConnectAsync(target, timeout.Token).ConfigureAwait(false);
                ok = true;
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                // No answer (or a refusal): a miss.
            }
        }

        return new ProbeAttempt(startMs, Clock.Elapsed.TotalMilliseconds, ok);
    }

    /// <summary>
    /// keepalived or ucarp on a two-node lab: a VIP as a normal address on eth0, a TCP listener on
    /// every node (so whichever holds the VIP answers), one client source probing; each kill takes
    /// the current master's link down, then restores it and waits until one node holds the VIP again.
    /// </summary>
    private static async Task<CoverResult> TryVipAsync(string name, int kills, Func<ClusterLab, int, string, LabProcess> start, CancellationToken ct)
    {
        try
        {
            return await VipAsync(name, kills, start, ct).ConfigureAwait(false);
        }
        catch (TimeoutException ex)
        {
            Log($"{name}: UNSTABLE: {ex.Message.Split('\n')[0]} (the VIP flaps between the nodes)");
            return new CoverResult(name, 0, [], 0) { Note = "UNSTABLE: the VIP flaps, no single holder for 1.5 s within 15 s" };
        }
    }

    private static async Task<CoverResult> VipAsync(string name, int kills, Func<ClusterLab, int, string, LabProcess> start, CancellationToken ct)
    {
        Log($"{name}: building a 2-node lab");
        await using var lab = await ClusterLab.CreateAsync(2, 1).ConfigureAwait(false);
        var listeners = new List<Socket>();
        using var stopAccept = new CancellationTokenSource();
        var accepts = new List<Task>();
        try
        {
            for (var k = 1; k <= 2; k++)
            {
                var listener = lab.Nodes[k - 1].OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                listener.Bind(new IPEndPoint(IPAddress.Any, ProbePort));
                listener.Listen(512);
                listeners.Add(listener);
                accepts.Add(AcceptLoopAsync(listener, stopAccept.Token));
                start(lab, k, lab.Network.CreateTempDirectory($"vip{k}"));
                await Task.Delay(200, ct).ConfigureAwait(false); // node 1 first: it becomes the master
            }

            var gaps = new List<double>();
            var uncovered = 0;
            for (var kill = 1; kill <= kills; kill++)
            {
                var master = await WaitForSingleMasterAsync(lab, TimeSpan.FromSeconds(15), ct).ConfigureAwait(false);
                var (killGaps, missing) = await KillAndProbeAsync(lab, [lab.ClientAddresses[0]], () => lab.LinkDown(master), ct).ConfigureAwait(false);
                gaps.AddRange(killGaps);
                uncovered += missing;
                Log(string.Create(CultureInfo.InvariantCulture, $"{name}: kill {kill} (node {master}'s link down): gap {string.Join(" ", killGaps.Select(g => $"{g:0}"))} ms{(missing > 0 ? " never covered" : string.Empty)}"));
                lab.LinkUp(master);
            }

            var cover = new CoverResult(name, kills, gaps, uncovered);
            Log(string.Create(CultureInfo.InvariantCulture, $"{name}: median {cover.MedianMs:0} ms, max {cover.MaxMs:0} ms"));
            return cover;
        }
        finally
        {
            await stopAccept.CancelAsync().ConfigureAwait(false);
            foreach (var l in listeners)
            {
                l.Dispose();
            }

            await Task.WhenAll(accepts).ConfigureAwait(false);
        }
    }

    private static async Task AcceptLoopAsync(Socket listener, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                using var accepted = await listener.AcceptAsync(ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
        }
    }

    /// <summary>Waits until exactly one node has the VIP on eth0 (and the client reaches it); returns that node.</summary>
    private static async Task<int> WaitForSingleMasterAsync(ClusterLab lab, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + timeout;
        var stableSince = DateTime.MaxValue;
        var last = 0;
        while (DateTime.UtcNow < deadline)
        {
            var holders = new List<int>();
            for (var k = 1; k <= lab.Nodes.Count; k++)
            {
                var r = await lab.RunOnNode(k, "ip", ["-o", "-4", "addr", "show", "dev", "eth0"], TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
                if (r.StdOut.Contains($" {ClusterLab.VipAddress}/", StringComparison.Ordinal))
                {
                    holders.Add(k);
                }
            }

            if (holders is [var only])
            {
                if (only != last)
                {
                    stableSince = DateTime.UtcNow;
                    last = only;
                }

                // One holder for 1.5 s, and the client reaches the VIP.
                if (DateTime.UtcNow - stableSince > TimeSpan.FromSeconds(1.5))
                {
                    try
                    {
                        using var s = await lab.Client.ConnectTcpAsync(new IPEndPoint(ClusterLab.VipAddress, ProbePort), TimeSpan.FromSeconds(1), ct).ConfigureAwait(false);
                        return only;
                    }
                    catch (Exception ex) when (ex is SocketException or OperationCanceledException)
                    {
                        // Not reachable yet (ARP not updated): keep waiting.
                    }
                }
            }
            else
            {
                last = 0;
            }

            await Task.Delay(100, ct).ConfigureAwait(false);
        }

        throw new TimeoutException($"no single VIP holder within {timeout.TotalSeconds:0} s\n{lab.Describe()}");
    }

    private static LabProcess StartKeepalived(ClusterLab lab, int node, string dir, string keepalived, int version, string advertInt)
    {
        var conf = Path.Combine(dir, "keepalived.conf");
        File.WriteAllText(conf, $$"""
            global_defs {
              router_id n{{node}}
              vrrp_version {{version}}
            }
            vrrp_instance VI_1 {
              state BACKUP
              interface eth0
              virtual_router_id 51
              priority {{(node == 1 ? 150 : 100)}}
              advert_int {{advertInt}}
              virtual_ipaddress {
                {{ClusterLab.VipCidr}} dev eth0
              }
            }

            """);
        return lab.Nodes[node - 1].Start(keepalived,
            "--dont-fork", "--log-console", "--vrrp", "--use-file", conf,
            "--pid", Path.Combine(dir, "keepalived.pid"), "--vrrp_pid", Path.Combine(dir, "vrrp.pid"));
    }

    private static LabProcess StartUcarp(ClusterLab lab, int node, string dir, string ucarp, int advbase, int advskew, int deadRatio = 3)
    {
        var up = Path.Combine(dir, "vip-up.sh");
        var down = Path.Combine(dir, "vip-down.sh");
        File.WriteAllText(up, $"#!/bin/sh\nexec ip addr add {ClusterLab.VipCidr} dev \"$1\"\n");
        File.WriteAllText(down, $"#!/bin/sh\nexec ip addr del {ClusterLab.VipCidr} dev \"$1\"\n");
        File.SetUnixFileMode(up, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.SetUnixFileMode(down, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return lab.Nodes[node - 1].Start(ucarp,
            "--interface=eth0", $"--srcip={ClusterLab.NodeAddress(node)}", "--vhid=1", "--pass=l2lab", $"--addr={ClusterLab.VipAddress}",
            $"--advbase={advbase}", $"--advskew={advskew}", $"--deadratio={deadRatio}", "--preempt", "--shutdown", $"--upscript={up}", $"--downscript={down}");
    }

    private static void Progress(string line) => Console.WriteLine($"             {line}");

    private static void Log(string text) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{Clock.Elapsed.TotalSeconds,6:0.0} s] {text}"));
}
