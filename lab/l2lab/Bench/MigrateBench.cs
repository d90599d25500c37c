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
            $"bench-migrate: {sessions} CONNECT sessions from node {Drained}'s {sources.Count} client addresses, {pace.Chunk} B each way every {pace.Interval.TotalMilliseconds:0} ms per session, ends {(pace.NoDelay ? "with" : "without")} TCP_NODELAY; {repeats} runs; {Environment.ProcessorCount} cores, load {File.ReadAllText("/proc/loadavg").Trim()}"));
        for (var run = 1; run <= repeats; run++)
        {
            await RunOnceAsync(lab, run, sources, sessions, pace).ConfigureAwait(false);
            var undrain = await lab.RunOnNode(Drained, ClusterBinaries.L2Bal, ["undrain"], Step).ConfigureAwait(false);
            undrain.EnsureSuccess();
            await ClusterOps.WaitForSharesAsync(lab, nodes, TimeSpan.FromSeconds(30), _ => { }, CancellationToken.None).ConfigureAwait(false);
        }

        Console.WriteLine($"load average at the end: {File.ReadAllText("/proc/loadavg").Trim()}");
        return 0;
    }

    private static async Task RunOnceAsync(ClusterLab lab, int run, List<IPAddress> sources, int count, Pace pace)
    {
        using var listener = lab.Target.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(ClusterLab.TargetAddress, 0));
        listener.Listen(count);
        using var stop = new CancellationTokenSource();
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
                    sessions.Add(await OpenAsync(lab, source, listener, (run * 100_000) + (2 * i), pace, stop.Token).ConfigureAwait(false));
                }
                catch (TimeoutException timeout)
                {
                    throw new TimeoutException($"run {run}: session {i + 1} of {count} from {sources[i % sources.Count]} not open within {Step.TotalSeconds:0} s a step ({timeout.Message}); load {File.ReadAllText("/proc/loadavg").Trim()}\n{lab.Describe()}", timeout);
                }
            }

            var listed = await ListedAsync(lab).ConfigureAwait(false);
            if (listed != count)
            {
                throw new InvalidOperationException($"node {Drained}'s l2proxy lists {listed} sessions, not {count}\n{lab.Describe()}");
            }

            // The generator's own cost at this load, and the ends' baseline, over the 4 s before the drain.
            sessions.ForEach(s => s.ResetWorst());
            await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            var idleStart = Stopwatch.GetTimestamp();
            var idleCpu = Process.GetCurrentProcess().TotalProcessorTime;
            await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            var generatorSteady = (Process.GetCurrentProcess().TotalProcessorTime - idleCpu).TotalMilliseconds / Stopwatch.GetElapsedTime(idleStart).TotalSeconds;
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
            var retransBefore = sessions.Select(s => s.Retransmissions()).ToArray();
            var daemons = AllNodes.SelectMany(k => new[] { lab.Balancer(k)!.Id, lab.Proxy(k)!.Id }).ToArray();
            var before = daemons.Select(pid => ProcessCpu.Read(pid) ?? default).ToArray();
            var generatorBefore = Process.GetCurrentProcess().TotalProcessorTime;
            using var lagStop = new CancellationTokenSource();
            var lag = GeneratorLagAsync(lagStop.Token);
            var started = Stopwatch.StartNew();
            var drain = lab.RunOnNode(Drained, ClusterBinaries.L2Bal, ["drain", "--migrate"], Step);
            var emptied = await EmptiedAsync(lab, started).ConfigureAwait(false);
            var answer = await drain.ConfigureAwait(false);
            var answered = started.Elapsed;
            var migrations = await DoneAsync(lab).ConfigureAwait(false);
            var window = started.Elapsed;
            var daemonCpu = daemons.Select((pid, i) => ((ProcessCpu.Read(pid) ?? before[i]) - before[i]).Total * 1000).ToArray();
            var generatorCpu = (Process.GetCurrentProcess().TotalProcessorTime - generatorBefore).TotalMilliseconds;

            var captured = await CapturedAsync(lab).ConfigureAwait(false) - capturedBefore;
            var atGo = await CapturedAsync(lab, AtGoMetric).ConfigureAwait(false) - atGoBefore;
            await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            await lagStop.CancelAsync().ConfigureAwait(false);
            var lags = await lag.ConfigureAwait(false);
            var frames = await CapturedAsync(lab, FramesMetric).ConfigureAwait(false) - framesBefore;
            var drops = await CapturedAsync(lab, DropsMetric).ConfigureAwait(false) - dropsBefore;
            var acks = await CapturedAsync(lab, AcksMetric).ConfigureAwait(false) - acksBefore;
            var late = await CapturedAsync(lab, LateMetric).ConfigureAwait(false) - lateBefore;
            var skipped = await CapturedAsync(lab, SkippedMetric).ConfigureAwait(false) - skippedBefore;
            var resent = sessions.Select((s, i) => s.Retransmissions() - retransBefore[i]).ToArray();
            await stop.CancelAsync().ConfigureAwait(false);
            var ended = Task.WhenAll(sessions.Select(s => s.Completion));
            await Task.WhenAny(ended, Task.Delay(TimeSpan.FromSeconds(30))).ConfigureAwait(false);

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
                  moved {done} (l2bal's migrations.done), refused (all runs so far): {(refused.Length == 0 ? "none" : refused)}
                  pause at the ends, worst one-way delay of a chunk per session (ms): {Percentiles(sessions.Select(s => s.Worst().Delay))}
                  the same in the 4 s before the drain (baseline): {Percentiles(baseline.Select(b => b.Delay))}
                  longest gap between arrivals per session (ms): {Percentiles(sessions.Select(s => s.Worst().Gap))}; baseline {Percentiles(baseline.Select(b => b.Gap))}
                  the generator's own lag over that time (a 10 ms timer's lateness, ms): {Percentiles(lags)}: a chunk read that late is counted as that much pause
                  pause up (client to target) / down (ms): {Percentiles(sessions.Select(s => s.WorstDirections().Up))}; {Percentiles(sessions.Select(s => s.WorstDirections().Down))}
                  sessions whose client end / target end / either resent a segment from the drain on: {resent.Count(r => r.Client > 0)} / {resent.Count(r => r.Target > 0)} / {resent.Count(r => r.Client + r.Target > 0)} ({resent.Sum(r => r.Client)} / {resent.Sum(r => r.Target)} segments, {resent.Sum(r => r.Spurious)} of them already received: DSACKed)
                  pause of the sessions with no resend / with one (ms): {Percentiles(sessions.Where((s, i) => resent[i].Client + resent[i].Target == 0).Select(s => s.Worst().Delay))}; {Percentiles(sessions.Where((s, i) => resent[i].Client + resent[i].Target > 0).Select(s => s.Worst().Delay))}
                  capture frames read / dropped by the kernel (nodes 1 and 3): {frames - drops} / {drops}; late (between Go's take and the mark, resent by the ends): {late}; legs whose append at Go was skipped: {skipped}; acknowledgements sent after the thaw: {acks}
                  bytes the ends sent while their flows moved, captured and appended on restore (nodes 1 and 3): {captured}, at Go: {atGo}
                  sessions cut {cut}, not ended within 30 s of the stop {unfinished}, with a wrong byte {mismatched}; bytes sent and not received (lost, or duplicated if negative) {lost}
                  CPU over the {window.TotalMilliseconds:0} ms to done, l2bal / l2proxy (ms): node 1 {daemonCpu[0]:0} / {daemonCpu[1]:0}, node 2 {daemonCpu[2]:0} / {daemonCpu[3]:0}, node 3 {daemonCpu[4]:0} / {daemonCpu[5]:0}; per session moved {daemonCpu.Sum() / Math.Max(done, 1):0.00} ms
                  generator (this process, {count * 2} stream ends): {generatorCpu:0} ms in that window, {generatorSteady:0} ms/s before the drain
                """));
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            sessions.ForEach(s => s.Dispose());
        }
    }

    /// <summary>
    /// The generator's own scheduling lag until <paramref name="stop"/>: how late a 10 ms timer's continuation runs, each time.
    /// The ends' reads wait the same way, so on shared cores part of the measured pause is this, not the move.
    /// </summary>
    private static async Task<List<double>> GeneratorLagAsync(CancellationToken stop)
    {
        var lags = new List<double>();
        while (!stop.IsCancellationRequested)
        {
            var at = Stopwatch.GetTimestamp();
            await Task.Delay(10, CancellationToken.None).ConfigureAwait(false);
            lags.Add(Math.Max(0, Stopwatch.GetElapsedTime(at).TotalMilliseconds - 10));
        }

        return lags;
    }

    /// <summary>Polls node 2's l2proxy <c>list</c> every 20 ms until it names no session: the elapsed time, or null past the bound.</summary>
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

    /// <summary>A SOCKS5 CONNECT from <paramref name="source"/> through the VIP to the listener; the next accepted connection is its target leg.</summary>
    private static async Task<BenchSession> OpenAsync(ClusterLab lab, IPEndPoint source, Socket listener, int seed, Pace pace, CancellationToken stop)
    {
        var client = lab.Client.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            client.Bind(source);
            await client.ConnectAsync(lab.ProxyEndPoint).WaitAsync(Step, CancellationToken.None).ConfigureAwait(false);
            var (code, bound) = await Socks5Client.HandshakeAsync(client, 1, (IPEndPoint)listener.LocalEndPoint!, CancellationToken.None).WaitAsync(Step, CancellationToken.None).ConfigureAwait(false);
            if (code != 0)
            {
                throw new InvalidOperationException($"CONNECT from {source}: reply {code} {bound}\n{lab.Describe()}");
            }

            var target = await listener.AcceptAsync(CancellationToken.None).AsTask().WaitAsync(Step, CancellationToken.None).ConfigureAwait(false);
            client.NoDelay = target.NoDelay = pace.NoDelay;
            return new BenchSession(client, target, seed, pace, stop);
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    private static string Percentiles(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return "none";
        }

        double At(double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
        return string.Create(CultureInfo.InvariantCulture, $"median {At(0.5):0} / p99 {At(0.99):0} / max {sorted[^1]:0}");
    }

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

    /// <summary>The worst a direction saw: the longest one-way delay of a chunk and the longest gap between two arrivals.</summary>
    private readonly record struct Worst(double Delay, double Gap);

    /// <summary>One session: its client and target ends each write chunks and check the other's.</summary>
    private sealed class BenchSession : IDisposable
    {
        private readonly Socket _client;
        private readonly Socket _target;
        private readonly BenchStream _up;
        private readonly BenchStream _down;

        public BenchSession(Socket client, Socket target, int seed, Pace pace, CancellationToken stop)
        {
            _client = client;
            _target = target;
            _up = new BenchStream(client, target, seed, pace, stop);
            _down = new BenchStream(target, client, seed + 1, pace, stop);
            Completion = Task.WhenAll(_up.Completion, _down.Completion);
        }

        public Task Completion { get; }

        public bool Cut => _up.Error is not null || _down.Error is not null;

        public bool Mismatched => _up.Mismatch || _down.Mismatch;

        public long Lost => _up.Sent - _up.Received + _down.Sent - _down.Received;

        public Worst Worst() => new(Math.Max(_up.WorstDelay, _down.WorstDelay), Math.Max(_up.WorstGap, _down.WorstGap));

        public (double Up, double Down) WorstDirections() => (_up.WorstDelay, _down.WorstDelay);

        /// <summary>Segments each end's kernel resent so far (tcp_info.tcpi_total_retrans): a segment lost on the way, or acknowledged too late.</summary>
        public Resent Retransmissions()
        {
            var (client, clientSpurious) = TotalRetrans(_client);
            var (target, targetSpurious) = TotalRetrans(_target);
            return new(client, target, clientSpurious + targetSpurious);
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
            _up.ResetWorst();
            _down.ResetWorst();
        }

        public void Dispose()
        {
            _client.Dispose();
            _target.Dispose();
        }
    }

    /// <summary>
    /// One direction: chunks of [u32 index][i64 send timestamp][pattern of the stream's positions]; the
    /// reader checks index and pattern (a lost or duplicated byte shifts every later chunk) and the delay.
    /// </summary>
    private sealed class BenchStream
    {
        private const int Header = 12;
        private readonly int _seed;
        private readonly int _chunk;

        public BenchStream(Socket writer, Socket reader, int seed, Pace pace, CancellationToken stop)
        {
            _seed = seed;
            _chunk = Math.Max(pace.Chunk, Header + 1);
            Completion = Task.WhenAll(Task.Run(() => WriteAsync(writer, pace.Interval, stop), CancellationToken.None), Task.Run(() => ReadAsync(reader), CancellationToken.None));
        }

        public Task Completion { get; }

        public long Sent { get; private set; }

        public long Received { get; private set; }

        public bool Mismatch { get; private set; }

        public string? Error { get; private set; }

        public double WorstDelay { get; private set; }

        public double WorstGap { get; private set; }

        public void ResetWorst()
        {
            WorstDelay = 0;
            WorstGap = 0;
        }

        private static byte At(int seed, long position) => (byte)((((ulong)position + (ulong)seed) * 0x9E3779B97F4A7C15UL) >> 56);

        private async Task WriteAsync(Socket socket, TimeSpan interval, CancellationToken stop)
        {
            var chunk = new byte[_chunk];
            // Spread the sessions' writes over the interval rather than all on one tick.
            await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * interval.TotalMilliseconds), CancellationToken.None).ConfigureAwait(false);
            try
            {
                for (uint index = 0; !stop.IsCancellationRequested; index++)
                {
                    BitConverter.TryWriteBytes(chunk.AsSpan(0, 4), index);
                    for (var i = Header; i < chunk.Length; i++)
                    {
                        chunk[i] = At(_seed, Sent + i);
                    }

                    BitConverter.TryWriteBytes(chunk.AsSpan(4, 8), Stopwatch.GetTimestamp());
                    var sent = 0;
                    while (sent < chunk.Length)
                    {
                        sent += await socket.SendAsync(chunk.AsMemory(sent), SocketFlags.None, CancellationToken.None).ConfigureAwait(false);
                    }

                    Sent += chunk.Length;
                    await Task.Delay(interval, CancellationToken.None).ConfigureAwait(false);
                }

                socket.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException e)
            {
                Error = $"write: {e.SocketErrorCode}";
            }
        }

        private async Task ReadAsync(Socket socket)
        {
            var buffer = new byte[16 * 1024];
            var pending = new byte[_chunk];
            var filled = 0;
            uint expected = 0;
            var last = Stopwatch.GetTimestamp();
            try
            {
                while (true)
                {
                    var n = await socket.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
                    var now = Stopwatch.GetTimestamp();
                    if (n == 0)
                    {
                        return;
                    }

                    WorstGap = Math.Max(WorstGap, Stopwatch.GetElapsedTime(last, now).TotalMilliseconds);
                    last = now;
                    for (var at = 0; at < n;)
                    {
                        var take = Math.Min(n - at, _chunk - filled);
                        buffer.AsSpan(at, take).CopyTo(pending.AsSpan(filled));
                        filled += take;
                        at += take;
                        if (filled == _chunk)
                        {
                            Check(pending, expected++, now);
                            filled = 0;
                        }
                    }

                    Received += n;
                }
            }
            catch (SocketException e)
            {
                Error = $"read: {e.SocketErrorCode}";
            }
        }

        private void Check(byte[] chunk, uint index, long now)
        {
            var position = (long)index * _chunk;
            if (BitConverter.ToUInt32(chunk, 0) != index)
            {
                Mismatch = true;
                return;
            }

            for (var i = Header; i < chunk.Length && !Mismatch; i++)
            {
                Mismatch = chunk[i] != At(_seed, position + i);
            }

            WorstDelay = Math.Max(WorstDelay, Stopwatch.GetElapsedTime(BitConverter.ToInt64(chunk, 4), now).TotalMilliseconds);
        }
    }
}
