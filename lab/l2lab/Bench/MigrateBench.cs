using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using L2Balance.Lab.Cluster;

namespace L2Balance.Lab.Cli.Bench;

/// <summary>
/// <c>l2lab bench-migrate</c> (issue 19, docs/design.md#migration-orchestration): the three-node single-IP
/// cluster with <c>--migrate</c>, N long CONNECT sessions of node 2's clients moving checked bytes both
/// ways, then <c>l2bal drain --migrate</c> on node 2: time to empty it, the pause the ends see, l2bal's
/// pause figures, sessions cut and bytes lost or duplicated, CPU per session moved beside the
/// generator's. Repeated R times in one lab (node 2 undrained between). Prints lines; not a test.
/// </summary>
internal static class MigrateBench
{
    private const int Drained = 2;
    private const int ProxyMetricsPort = 9201;
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(15);
    private static readonly int[] AllNodes = [1, 2, 3];

    /// <summary>The drain, from the command to the node's proxy listing none, is given up after this.</summary>
    private static readonly TimeSpan EmptyBound = TimeSpan.FromSeconds(60);

    public static async Task<int> RunAsync(string[] args)
    {
        var sessions = IntOption(args, "--sessions", 1000);
        var repeats = IntOption(args, "--repeats", 3);
        var pace = new Pace(IntOption(args, "--chunk", 256), TimeSpan.FromMilliseconds(IntOption(args, "--interval-ms", 100)), args.Contains("--nodelay"));
        // As before 2026-12-04: node 2's l2proxy listed every 20 ms from the drain's start, to see what that poll cost.
        var listDuringDrain = args.Contains("--list-during-drain");
        if (!Environment.IsPrivilegedProcess)
        {
            Console.WriteLine("bench-migrate: skipped (needs root for the namespaces)");
            return 0;
        }

        await using var lab = await ClusterLab.CreateAsync(3, 60).ConfigureAwait(false);
        lab.SingleIp = true;
        var nodes = AllNodes;
        foreach (var k in nodes)
        {
            await ClusterOps.StartBalancerAsync(lab, k, CancellationToken.None,
                "--advert-interval", "50ms", "--dead-after", "6", "--migrate", ClusterLab.NodeAddress(k).ToString()).ConfigureAwait(false);
            lab.StartProxy(k, "--negotiate-timeout", "5s", "--metrics", $"127.0.0.1:{ProxyMetricsPort}");
        }

        await ClusterOps.WaitForSharesAsync(lab, nodes, TimeSpan.FromSeconds(30), _ => { }, CancellationToken.None).ConfigureAwait(false);
        var table = ClusterOps.Table(3, nodes);
        var sources = lab.ClientAddresses.Where(a => ClusterOps.OwnerOf(table, a) == Drained).ToList();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"bench-migrate: {sessions} CONNECT sessions from node {Drained}'s {sources.Count} client addresses, {pace.Chunk} B each way every {pace.Interval.TotalMilliseconds:0} ms per session, ends {(pace.NoDelay ? "with" : "without")} TCP_NODELAY; node 2 listed every 20 ms {(listDuringDrain ? "from the drain's start" : "from the drain's answer")}; {repeats} runs; {Environment.ProcessorCount} cores, load {File.ReadAllText("/proc/loadavg").Trim()}"));
        var results = new List<RunResult>();
        for (var run = 1; run <= repeats; run++)
        {
            results.Add(await RunOnceAsync(lab, run, sources, sessions, pace, listDuringDrain).ConfigureAwait(false));
            var undrain = await lab.RunOnNode(Drained, ClusterBinaries.L2Bal, ["undrain"], Step).ConfigureAwait(false);
            undrain.EnsureSuccess();
            await ClusterOps.WaitForSharesAsync(lab, nodes, TimeSpan.FromSeconds(30), _ => { }, CancellationToken.None).ConfigureAwait(false);
        }

        // The issue's targets are over all runs: every session's pause pooled, the slowest emptying, the totals.
        var emptiedAll = results.Select(r => r.Emptied?.TotalMilliseconds).ToList();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"""
            all {results.Count} runs ({results.Sum(r => r.Pauses.Count)} sessions): pause at the ends (to the kernel) {Percentiles(results.SelectMany(r => r.Pauses))}; p99 per run {string.Join(" ", results.Select(r => Percentiles(r.Pauses, 0.99)))}
              emptied (ms) {string.Join(" ", emptiedAll.Select(e => e is { } v ? $"{v:0}" : "never"))}; cut {results.Sum(r => r.Cut)}, with a wrong byte {results.Sum(r => r.Mismatched)}, bytes lost or duplicated {results.Sum(r => r.Lost)}
            """));
        Console.WriteLine($"load average at the end: {File.ReadAllText("/proc/loadavg").Trim()}");
        return 0;
    }

    /// <summary>What one run gives the summary over all runs.</summary>
    private sealed record RunResult(IReadOnlyList<double> Pauses, TimeSpan? Emptied, int Cut, int Mismatched, long Lost);

    private static async Task<RunResult> RunOnceAsync(ClusterLab lab, int run, List<IPAddress> sources, int count, Pace pace, bool listDuringDrain)
    {
        using var listener = lab.Target.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(ClusterLab.TargetAddress, 0));
        listener.Listen(count);
        using var pump = new EndPump(pace.Interval);
        var sessions = new List<BenchSession>();
        if (count / sources.Count >= 100)
        {
            throw new ArgumentException($"bench-migrate: at most {100 * sources.Count} sessions (100 source ports per client address and run)");
        }

        try
        {
            for (var i = 0; i < count; i++)
            {
                try
                {
                    // A source port of its own per run: a 4-tuple reused from an earlier run meets that flow's moved-away conntrack mark on node 2 and is dropped.
                    var source = new IPEndPoint(sources[i % sources.Count], 10_000 + (run * 100) + (i / sources.Count));
                    var (client, target) = await OpenAsync(lab, source, listener, pace).ConfigureAwait(false);
                    var seed = (run * 100_000) + (2 * i);
                    sessions.Add(new BenchSession(client, target, pump.Add(client, target, seed, pace.Chunk), pump.Add(target, client, seed + 1, pace.Chunk)));
                }
                catch (TimeoutException timeout)
                {
                    throw new TimeoutException($"run {run}: session {i + 1} of {count} from {sources[i % sources.Count]} not open within {Step.TotalSeconds:0} s a step ({timeout.Message}); load {File.ReadAllText("/proc/loadavg").Trim()}\n{lab.Describe()}", timeout);
                }
            }

            pump.Start();
            var listed = await ListedAsync(lab).ConfigureAwait(false);
            if (listed != count)
            {
                throw new InvalidOperationException($"node {Drained}'s l2proxy lists {listed} sessions, not {count}\n{lab.Describe()}");
            }

            // The generator's own cost at this load, and the ends' baseline, over the 4 s before the drain.
            sessions.ForEach(s => s.ResetWorst());
            await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            var daemons = AllNodes.SelectMany(k => new[] { lab.Balancer(k)!.Id, lab.Proxy(k)!.Id }).ToArray();
            var idleStart = Stopwatch.GetTimestamp();
            var idleCpu = Process.GetCurrentProcess().TotalProcessorTime;
            var idleDaemons = daemons.Select(pid => ProcessCpu.Read(pid) ?? default).ToArray();
            await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            var idleSeconds = Stopwatch.GetElapsedTime(idleStart).TotalSeconds;
            var generatorSteady = (Process.GetCurrentProcess().TotalProcessorTime - idleCpu).TotalMilliseconds / idleSeconds;
            var daemonsSteady = daemons.Select((pid, i) => ((ProcessCpu.Read(pid) ?? idleDaemons[i]) - idleDaemons[i]).Total * 1000 / idleSeconds).ToArray();
            var baseline = sessions.Select(s => s.Worst()).ToList();
            sessions.ForEach(s => s.ResetWorst());

            var doneBefore = (await DoneAsync(lab).ConfigureAwait(false)).GetProperty("done").GetInt64();
            var capturedBefore = await CapturedAsync(lab).ConfigureAwait(false);
            var atGoBefore = await CapturedAsync(lab, AtGoMetric).ConfigureAwait(false);
            var framesBefore = await CapturedAsync(lab, FramesMetric).ConfigureAwait(false);
            var dropsBefore = await CapturedAsync(lab, DropsMetric).ConfigureAwait(false);
            var acksBefore = await CapturedAsync(lab, AcksMetric).ConfigureAwait(false);
            var lateBefore = await CapturedAsync(lab, LateMetric).ConfigureAwait(false);
            var skippedBefore = await CapturedAsync(lab, SkippedMetric).ConfigureAwait(false);
            var inBefore = await CapturedAsync(lab, InMetric).ConfigureAwait(false);
            var lostBefore = await CapturedAsync(lab, LostMetric).ConfigureAwait(false);
            var retransBefore = sessions.Select(s => s.Retransmissions()).ToArray();
            var before = daemons.Select(pid => ProcessCpu.Read(pid) ?? default).ToArray();
            var generatorBefore = Process.GetCurrentProcess().TotalProcessorTime;
            // The generator's own stop-the-world pauses: every end of this process stalls while they last.
            var gcBefore = (Pause: GC.GetTotalPauseDuration(), Gen2: GC.CollectionCount(2));
            var machineBefore = MachineCpu();
            pump.RecordReadLags(true);
            var logMarks = AllNodes.SelectMany(k => new[] { ($"l2bal{k}", lab.Balancer(k)), ($"l2proxy{k}", lab.Proxy(k)) })
                .ToDictionary(p => p.Item1, p => (p.Item2?.Log ?? "").Split('\n').Length - 1);
            var started = Stopwatch.StartNew();
            // Node 2's l2proxy is listed only once the drain answered: a list of 1,000 sessions every 20 ms during the run
            // cost that l2proxy CPU on the shared cores (docs/benchmarks.md#the-list-poll-of-the-emptying-time-2026-12-04).
            var drain = lab.RunOnNode(Drained, ClusterBinaries.L2Bal, ["drain", "--migrate"], Step);
            var polling = listDuringDrain ? EmptiedAsync(lab, started) : null;
            var answer = await drain.ConfigureAwait(false);
            var answered = started.Elapsed;
            var emptied = await (polling ?? EmptiedAsync(lab, started)).ConfigureAwait(false);
            // CPU up to the answer: the status read below is the bench's, not the drain's (it once cost l2bal 200 ms: docs/benchmarks.md#what-the-drained-nodes-l2bal-cpu-was).
            var daemonCpu = daemons.Select((pid, i) => ((ProcessCpu.Read(pid) ?? before[i]) - before[i]).Total * 1000).ToArray();
            var generatorCpu = (Process.GetCurrentProcess().TotalProcessorTime - generatorBefore).TotalMilliseconds;
            var gcPause = (GC.GetTotalPauseDuration() - gcBefore.Pause).TotalMilliseconds;
            var gen2 = GC.CollectionCount(2) - gcBefore.Gen2;
            var machine = MachineCpu();
            var window = started.Elapsed;
            var migrations = await DoneAsync(lab).ConfigureAwait(false);

            var captured = await CapturedAsync(lab).ConfigureAwait(false) - capturedBefore;
            var atGo = await CapturedAsync(lab, AtGoMetric).ConfigureAwait(false) - atGoBefore;
            await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            pump.RecordReadLags(false);
            var lags = pump.ReadLags();
            var frames = await CapturedAsync(lab, FramesMetric).ConfigureAwait(false) - framesBefore;
            var drops = await CapturedAsync(lab, DropsMetric).ConfigureAwait(false) - dropsBefore;
            var acks = await CapturedAsync(lab, AcksMetric).ConfigureAwait(false) - acksBefore;
            var late = await CapturedAsync(lab, LateMetric).ConfigureAwait(false) - lateBefore;
            var skipped = await CapturedAsync(lab, SkippedMetric).ConfigureAwait(false) - skippedBefore;
            var movedIn = await CapturedAsync(lab, InMetric).ConfigureAwait(false) - inBefore;
            var lostAtGo = await CapturedAsync(lab, LostMetric).ConfigureAwait(false) - lostBefore;
            var resent = sessions.Select((s, i) => s.Retransmissions() - retransBefore[i]).ToArray();
            pump.Stop();
            var ended = Task.WhenAll(sessions.Select(s => s.Completion));
            await Task.WhenAny(ended, Task.Delay(TimeSpan.FromSeconds(30))).ConfigureAwait(false);
            // What the moves leave in node 2's conntrack (per namespace): the sessions ended on their new nodes.
            var conntrack = (await lab.RunOnNode(Drained, "cat", ["/proc/sys/net/netfilter/nf_conntrack_count"], Step).ConfigureAwait(false)).StdOut.Trim();

            var done = migrations.GetProperty("done").GetInt64() - doneBefore;
            var refused = string.Join(", ", migrations.GetProperty("refused").EnumerateObject().Where(r => r.Value.GetInt64() > 0).Select(r => $"{r.Name} {r.Value}"));
            var cut = sessions.Count(s => s.Cut);
            var unfinished = sessions.Count(s => !s.Completion.IsCompleted);
            var lost = sessions.Sum(s => s.Lost);
            var mismatched = sessions.Count(s => s.Mismatched);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"""
                run {run} ({DateTime.UtcNow:HH:mm:ss} UTC, load {File.ReadAllText("/proc/loadavg").Trim()}):
                  drain --migrate answered in {answered.TotalMilliseconds:0} ms: {answer.StdOut.Trim()}{answer.StdErr.Trim()}
                  node {Drained} emptied (command start to its l2proxy listing 0): {(emptied is { } e ? $"{e.TotalMilliseconds:0} ms" : $"not within {EmptyBound.TotalSeconds:0} s")}
                  moved {done} (l2bal's migrations.done), refused (all runs so far): {(refused.Length == 0 ? "none" : refused)}; restored and relayed on nodes 1 and 3: {movedIn}, lost there at Go: {lostAtGo}
                  pause at the ends, worst one-way delay of a chunk per session, to its arrival at the end's kernel (ms): {Percentiles(sessions.Select(s => s.Worst().Delay))}
                  the same in the 4 s before the drain (baseline): {Percentiles(baseline.Select(b => b.Delay))}
                  the same to the generator's read (its own scheduling on the shared cores included): {Percentiles(sessions.Select(s => s.Worst().ReadDelay))}; baseline {Percentiles(baseline.Select(b => b.ReadDelay))}
                  longest gap between arrivals per session (ms): {Percentiles(sessions.Select(s => s.Worst().Gap))}; baseline {Percentiles(baseline.Select(b => b.Gap))}
                  the generator's read after the kernel's receipt, each read over that time (ms): {Percentiles(lags)}
                  pause up (client to target) / down (ms): {Percentiles(sessions.Select(s => s.WorstDirections().Up))}; {Percentiles(sessions.Select(s => s.WorstDirections().Down))}
                  sessions whose client end / target end / either resent a segment from the drain on: {resent.Count(r => r.Client > 0)} / {resent.Count(r => r.Target > 0)} / {resent.Count(r => r.Client + r.Target > 0)} ({resent.Sum(r => r.Client)} / {resent.Sum(r => r.Target)} segments, {resent.Sum(r => r.Spurious)} of them already received: DSACKed)
                  pause of the sessions with no resend / with one (ms): {Percentiles(sessions.Where((s, i) => resent[i].Client + resent[i].Target == 0).Select(s => s.Worst().Delay))}; {Percentiles(sessions.Where((s, i) => resent[i].Client + resent[i].Target > 0).Select(s => s.Worst().Delay))}
                  capture frames read / dropped by the kernel (nodes 1 and 3): {frames - drops} / {drops}; late (between Go's take and the mark, resent by the ends): {late}; legs whose append at Go was skipped: {skipped}; acknowledgements sent after the thaw: {acks}
                  bytes the ends sent while their flows moved, captured and appended on restore (nodes 1 and 3): {captured}, at Go: {atGo}
                  node {Drained}'s conntrack entries once the sessions ended: {conntrack} (l2bal deleted {migrations.GetProperty("conntrackDeleted").GetInt64()} at the moves, all runs so far)
                  sessions cut {cut}, not ended within 30 s of the stop {unfinished}, with a wrong byte {mismatched}; bytes sent and not received (lost, or duplicated if negative) {lost}
                  CPU over the {window.TotalMilliseconds:0} ms to the answer, l2bal / l2proxy (ms): node 1 {daemonCpu[0]:0} / {daemonCpu[1]:0}, node 2 {daemonCpu[2]:0} / {daemonCpu[3]:0}, node 3 {daemonCpu[4]:0} / {daemonCpu[5]:0}; per session moved {daemonCpu.Sum() / Math.Max(done, 1):0.00} ms; before the drain (ms/s): node 1 {daemonsSteady[0]:0} / {daemonsSteady[1]:0}, node 2 {daemonsSteady[2]:0} / {daemonsSteady[3]:0}, node 3 {daemonsSteady[4]:0} / {daemonsSteady[5]:0}
                  generator (this process, {count * 2} stream ends): {generatorCpu:0} ms in that window, {generatorSteady:0} ms/s before the drain; its garbage collector paused it {gcPause:0} ms in that window ({gen2} full collections)
                  the machine in that window (/proc/stat, every core): busy {machine.Busy - machineBefore.Busy:0} ms, of it softirq {machine.SoftIrq - machineBefore.SoftIrq:0} ms; idle {machine.Idle - machineBefore.Idle:0} ms; busy beyond the six daemons and the generator {machine.Busy - machineBefore.Busy - daemonCpu.Sum() - generatorCpu:0} ms
                """));
            if (cut + unfinished + mismatched > 0 || lost != 0)
            {
                // What the daemons said while this run's sessions broke: the endpoints of the broken ones, then every warning or error line of the run.
                var broken = sessions.Where(s => s.Cut || s.Mismatched || s.Lost != 0 || !s.Completion.IsCompleted).Select(s => s.Describe());
                Console.WriteLine($"  broken sessions: {string.Join("; ", broken.Take(10))}");
                foreach (var k in AllNodes)
                {
                    foreach (var (name, process) in new[] { ("l2bal", lab.Balancer(k)), ("l2proxy", lab.Proxy(k)) })
                    {
                        var lines = (process?.Log ?? "").Split('\n')[logMarks[$"{name}{k}"]..]
                            .Where(l => l.Contains("warn", StringComparison.Ordinal) || l.Contains("error", StringComparison.Ordinal)).Take(40);
                        foreach (var line in lines)
                        {
                            Console.WriteLine($"  node {k} {name}: {line}");
                        }
                    }
                }
            }
            return new RunResult([.. sessions.Select(s => s.Worst().Delay)], emptied, cut, mismatched, sessions.Sum(s => Math.Abs(s.Lost)));
        }
        finally
        {
            pump.Dispose();
            sessions.ForEach(s => s.Dispose());
        }
    }

    /// <summary>Every core's CPU time so far from /proc/stat's first line (ms): busy (all but idle and iowait), of it softirq, and idle.</summary>
    private static (double Busy, double SoftIrq, double Idle) MachineCpu()
    {
        var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(f => long.Parse(f, CultureInfo.InvariantCulture) * 10.0).ToArray();
        // user nice system idle iowait irq softirq steal, in clock ticks of 10 ms.
        return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7], fields[6], fields[3] + fields[4]);
    }

    /// <summary>Polls node 2's l2proxy <c>list</c> every 20 ms until it names no session: the elapsed time (at least the drain's answer), or null past the bound.</summary>
    private static async Task<TimeSpan?> EmptiedAsync(ClusterLab lab, Stopwatch started)
    {
        while (started.Elapsed < EmptyBound)
        {
            if (await ListedAsync(lab).ConfigureAwait(false) == 0)
            {
                return started.Elapsed;
            }

            await Task.Delay(20).ConfigureAwait(false);
        }

        return null;
    }

    /// <summary>Node 2's <c>migrations</c> from <c>status --json</c> once no run is in progress.</summary>
    private static async Task<JsonElement> DoneAsync(ClusterLab lab)
    {
        var deadline = DateTime.UtcNow + EmptyBound;
        while (true)
        {
            var result = await lab.RunOnNode(Drained, ClusterBinaries.L2Bal, ["status", "--json"], Step).ConfigureAwait(false);
            if (result.Succeeded)
            {
                using var doc = JsonDocument.Parse(result.StdOut);
                var migrations = doc.RootElement.GetProperty("migrations").Clone();
                if (migrations.GetProperty("inProgress").GetInt64() == 0 || DateTime.UtcNow > deadline)
                {
                    return migrations;
                }
            }
            else if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"l2bal status on node {Drained}: {result}");
            }

            await Task.Delay(100).ConfigureAwait(false);
        }
    }

    /// <summary>Bytes appended at Go, after the restore (docs/design.md#the-pause).</summary>
    private const string AtGoMetric = "l2proxy_migration_captured_at_go_bytes_total";

    private const string FramesMetric = "l2proxy_migration_capture_frames_total";

    private const string DropsMetric = "l2proxy_migration_capture_drops_total";

    private const string SkippedMetric = "l2proxy_migration_go_appends_skipped_total";

    private const string LateMetric = "l2proxy_migration_capture_late_segments_total";

    private const string AcksMetric = "l2proxy_migration_acks_total{result=\"sent\"}";

    /// <summary>Sessions the new nodes restored and relay; a moved session not among them was lost there (docs/design.md#failure-paths-of-a-move).</summary>
    private const string InMetric = "l2proxy_migrations_total{direction=\"in\"}";

    private const string LostMetric = "l2proxy_migrations_lost_total";

    /// <summary>l2proxy's <c>l2proxy_migration_captured_bytes_total</c> (or <paramref name="metric"/>) on nodes 1 and 3, summed (docs/design.md#the-pause).</summary>
    private static async Task<long> CapturedAsync(ClusterLab lab, string metric = "l2proxy_migration_captured_bytes_total")
    {
        long sum = 0;
        foreach (var k in new[] { 1, 3 })
        {
            var scrape = await lab.RunOnNode(k, "curl", ["-sS", "-m", "5", $"http://127.0.0.1:{ProxyMetricsPort}/metrics"], Step).ConfigureAwait(false);
            sum += scrape.StdOut.Split('\n').Where(l => l.StartsWith(metric + " ", StringComparison.Ordinal))
                .Sum(l => long.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
        }

        return sum;
    }

    /// <summary>The number of sessions node 2's l2proxy lists on its migration socket (abstract name, node's namespace).</summary>
    private static async Task<int> ListedAsync(ClusterLab lab)
    {
        using var socket = lab.Nodes[Drained - 1].OpenSocket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint("\0l2proxy-migrate")).WaitAsync(Step, CancellationToken.None).ConfigureAwait(false);
        await socket.SendAsync("list\n"u8.ToArray(), SocketFlags.None).WaitAsync(Step, CancellationToken.None).ConfigureAwait(false);
        var answer = new MemoryStream();
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(Step, CancellationToken.None).ConfigureAwait(false)) > 0)
        {
            answer.Write(buffer, 0, n);
        }

        return Encoding.ASCII.GetString(answer.ToArray()).Split('\n').Count(l => l.StartsWith("session ", StringComparison.Ordinal));
    }

    /// <summary>
    /// A SOCKS5 CONNECT from <paramref name="source"/> through the VIP to the listener; the next accepted connection is its target leg.
    /// Synchronous calls on a thread of its own, bounded by <see cref="Step"/>: .NET's epoll thread never registers these sockets
    /// (<see cref="EndPump"/> reads them).
    /// </summary>
    private static async Task<(Socket Client, Socket Target)> OpenAsync(ClusterLab lab, IPEndPoint source, Socket listener, Pace pace)
    {
        var client = lab.Client.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            return await Task.Run(() => Open(lab, client, source, listener, pace)).WaitAsync(Step, CancellationToken.None).ConfigureAwait(false);
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    private static (Socket Client, Socket Target) Open(ClusterLab lab, Socket client, IPEndPoint source, Socket listener, Pace pace)
    {
        client.Bind(source);
        client.Connect(lab.ProxyEndPoint);
        client.Send([5, 1, 0]);
        var reply = ReadExactly(client, 2);
        if (reply[0] != 5 || reply[1] != 0)
        {
            throw new InvalidOperationException($"CONNECT from {source}: method selection {reply[0]} {reply[1]}");
        }

        var request = new byte[32];
        client.Send(request.AsSpan(0, Socks5Client.WriteRequest(request, 1, (IPEndPoint)listener.LocalEndPoint!)));
        reply = ReadExactly(client, 10);
        if (reply[1] != 0)
        {
            throw new InvalidOperationException($"CONNECT from {source}: reply {reply[1]}\n{lab.Describe()}");
        }

        if (!listener.Poll(Step, SelectMode.SelectRead))
        {
            throw new TimeoutException($"CONNECT from {source}: the target accepted nothing");
        }

        var target = listener.Accept();
        client.NoDelay = target.NoDelay = pace.NoDelay;
        return (client, target);
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes, each read bounded by <see cref="Step"/> (poll, not a socket timeout).</summary>
    private static byte[] ReadExactly(Socket socket, int count)
    {
        var buffer = new byte[count];
        for (var got = 0; got < count;)
        {
            if (!socket.Poll(Step, SelectMode.SelectRead))
            {
                throw new TimeoutException($"no answer from the proxy within {Step.TotalSeconds:0} s");
            }

            var n = socket.Receive(buffer, got, count - got, SocketFlags.None);
            got += n > 0 ? n : throw new EndOfStreamException("the proxy closed the connection");
        }

        return buffer;
    }

    private static string Percentiles(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return "none";
        }

        return string.Create(CultureInfo.InvariantCulture, $"median {At(sorted, 0.5):0} / p99 {At(sorted, 0.99):0} / max {sorted[^1]:0}");
    }

    /// <summary>One percentile, as <see cref="Percentiles(IEnumerable{double})"/> takes it.</summary>
    private static string Percentiles(IEnumerable<double> values, double q)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? "none" : string.Create(CultureInfo.InvariantCulture, $"{At(sorted, q):0}");
    }

    private static double At(double[] sorted, double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];

    private static int IntOption(string[] args, string name, int fallback)
    {
        var at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length && int.TryParse(args[at + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0
            ? v
            : at >= 0 ? throw new ArgumentException($"bench-migrate: {name} needs a positive number") : fallback;
    }

    /// <summary>How the ends write; <paramref name="NoDelay"/>: TCP_NODELAY on both ends (Nagle off, as ssh sets it), else the socket default.</summary>
    private readonly record struct Pace(int Chunk, TimeSpan Interval, bool NoDelay);

    /// <summary>Segments resent by the client end and by the target end of a session; <paramref name="Spurious"/>: resends the receiver already had (DSACKed).</summary>
    private readonly record struct Resent(long Client, long Target, long Spurious)
    {
        public static Resent operator -(Resent a, Resent b) => new(a.Client - b.Client, a.Target - b.Target, a.Spurious - b.Spurious);
    }

    /// <summary>
    /// The worst a direction saw: the longest one-way delay of a chunk and the longest gap between two arrivals, both to the
    /// end's kernel; and the longest delay to the generator's read.
    /// </summary>
    private readonly record struct Worst(double Delay, double Gap, double ReadDelay);

    /// <summary>One session: its client and target ends, each writing chunks the other checks (<see cref="EndPump"/>).</summary>
    private sealed class BenchSession(Socket client, Socket target, EndPump.PumpStream up, EndPump.PumpStream down) : IDisposable
    {
        public Task Completion { get; } = Task.WhenAll(up.Ended.Task, down.Ended.Task);

        public bool Cut => up.Error is not null || down.Error is not null;

        public bool Mismatched => up.Mismatch || down.Mismatch;

        /// <summary>The client's and the target's endpoints and each direction's counts, for a broken session's line.</summary>
        public string Describe()
        {
            static string Of(Socket s) { try { return $"{s.LocalEndPoint}->{s.RemoteEndPoint}"; } catch (ObjectDisposedException) { return "closed"; } }
            return $"client {Of(client)}, target {Of(target)}: up sent {up.Sent} received {up.Received} {up.Error}, down sent {down.Sent} received {down.Received} {down.Error}";
        }

        public long Lost => up.Sent - up.Received + down.Sent - down.Received;

        public Worst Worst() => new(Math.Max(up.WorstDelay, down.WorstDelay), Math.Max(up.WorstGap, down.WorstGap), Math.Max(up.WorstReadDelay, down.WorstReadDelay));

        public (double Up, double Down) WorstDirections() => (up.WorstDelay, down.WorstDelay);

        /// <summary>Segments each end's kernel resent so far (tcp_info.tcpi_total_retrans): a segment lost on the way, or acknowledged too late.</summary>
        public Resent Retransmissions()
        {
            var (clientResent, clientSpurious) = TotalRetrans(client);
            var (targetResent, targetSpurious) = TotalRetrans(target);
            return new(clientResent, targetResent, clientSpurious + targetSpurious);
        }

        private static (long Total, long Spurious) TotalRetrans(Socket socket)
        {
            // IPPROTO_TCP, TCP_INFO; tcpi_total_retrans at offset 100, tcpi_dsack_dups at 216 of struct tcp_info (include/uapi/linux/tcp.h).
            Span<byte> info = stackalloc byte[220];
            try
            {
                var n = socket.GetRawSocketOption(6, 11, info);
                return (n >= 104 ? BitConverter.ToUInt32(info[100..]) : 0, n >= 220 ? BitConverter.ToUInt32(info[216..]) : 0);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return (0, 0);
            }
        }

        public void ResetWorst()
        {
            up.ResetWorst();
            down.ResetWorst();
        }

        public void Dispose()
        {
            client.Dispose();
            target.Dispose();
        }
    }
}
