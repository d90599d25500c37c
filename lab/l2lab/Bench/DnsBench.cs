using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using L2Balance.Lab.Cluster;

namespace L2Balance.Lab.Cli.Bench;

/// <summary>
/// Issue 16's DNS benchmark on one lab (<see cref="DnsClusterLab"/>: three nodes with unbound, l2bal
/// with udp/53 at affinity none): one unbound alone (node 1's own address), the L2 cluster (the VIP)
/// and dnsdist (Debian) in a namespace of its own relaying to the same three servers. Steady runs at
/// a fixed rate, alternated over repeats with an idle window, a settle time before each window and
/// a CPU account per window (<see cref="MachineCpu"/>, <see cref="ProcessCpu"/>); then node 2's unbound killed mid-run,
/// repeated and alternated, for the cluster and for dnsdist at its default and fastest health check.
/// No pass/fail: tables for docs/benchmarks.md and artifacts/bench/dns-TIMESTAMP.json.
/// </summary>
internal static class DnsBench
{
    private static readonly IPAddress DnsdistAddress = IPAddress.Parse("198.18.0.20");
    private static readonly IPAddress DnsdistFastestAddress = IPAddress.Parse("198.18.0.21");
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(2);
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private sealed record Options(int Rate, int Seconds, int Repeats, int Kills, bool LabGenerator);

    private sealed record Subject(string Key, string Name, IPAddress? Server);

    public static async Task<int> RunAsync(string[] args)
    {
        if (ParseOptions(args) is not { } o)
        {
            return 2;
        }
        if (!DnsClusterLab.HasAffinityOption)
        {
            Console.Error.WriteLine("l2lab bench-dns: this l2bal has no --affinity; udp/53 would hash on the source address alone");
            return 2;
        }
        var dnsperf = LabBinaries.Require("dnsperf", "dnsperf");
        var dnsdist = LabBinaries.Require("dnsdist", "dnsdist");
        var generator = o.LabGenerator ? "the lab's generator (2,000 source ports, in this process)" : "dnsperf -c 100";
        Console.WriteLine($"l2lab bench-dns: {o.Rate} queries/s for {o.Seconds} s per subject with {generator}, {o.Repeats} repeats, {o.Kills} kill runs per subject, {Environment.ProcessorCount} cores");
        var started = DateTimeOffset.UtcNow;
        await using var dns = await DnsClusterLab.CreateAsync().ConfigureAwait(false);
        var lab = dns.Lab;
        var relay = lab.Network.AddHost("dd");
        lab.Network.ConnectToSwitch(lab.Switch, relay, "eth0");
        relay.AddAddress("eth0", $"{DnsdistAddress}/24");
        relay.AddAddress("eth0", $"{DnsdistFastestAddress}/24");
        relay.AddRoute("default via 198.18.0.254");
        var dir = lab.Network.CreateTempDirectory("bench-dns");
        var queries = Path.Combine(dir, "queries.txt");
        await File.WriteAllTextAsync(queries, $"{DnsServers.WhoName} TXT\n").ConfigureAwait(false);
        // Both dnsdist run from the start to the end, so every window pays their idle health checks alike.
        using var relayDefault = await StartDnsdistAsync(relay, dnsdist, dir, DnsdistAddress, fastest: false, lab).ConfigureAwait(false);
        using var relayFastest = await StartDnsdistAsync(relay, dnsdist, dir, DnsdistFastestAddress, fastest: true, lab).ConfigureAwait(false);
        Dictionary<string, int> Pids()
        {
            var pids = new Dictionary<string, int>(StringComparer.Ordinal);
            for (var k = 1; k <= lab.Nodes.Count; k++)
            {
                pids[$"unbound_n{k}"] = dns.DnsServer(k)!.Id;
                pids[$"l2bal_n{k}"] = lab.Balancer(k)!.Id;
            }
            pids["dnsdist"] = relayDefault.Id;
            pids["dnsdist_fastest"] = relayFastest.Id;
            pids["l2lab"] = Environment.ProcessId;
            foreach (var (name, pid) in KernelSoftirqThreads)
            {
                pids[name] = pid;
            }
            return pids;
        }

        Subject[] subjects =
        [
            new("alone", "one unbound alone (node 1)", ClusterLab.NodeAddress(1)),
            new("cluster", "L2 cluster, 3 nodes, udp/53=none", ClusterLab.VipAddress),
            new("dnsdist", "dnsdist -> 3 unbound", DnsdistAddress),
        ];
        var idle = new Subject("idle", "idle (no load)", null);
        var load = new LoadRunner(lab, dnsperf, queries, o);
        foreach (var s in subjects)
        {
            // Not counted: the first queries of each path (neighbour entries, conntrack, dnsdist's and this process's first code runs).
            await load.RunAsync(s.Server!, WarmUp).ConfigureAwait(false);
        }
        var idleLevel = await CalibrateIdleAsync().ConfigureAwait(false);
        Console.WriteLine($"  idle level after the warm-up: {idleLevel:0.000} cores busy (median of 0.5 s samples)");

        var windows = new List<Window>();
        for (var r = 0; r < o.Repeats; r++)
        {
            Subject[] order = [idle, .. subjects];
            foreach (var s in order.Skip(r % order.Length).Concat(order.Take(r % order.Length)))
            {
                var (settle, settled) = await SettleAsync(idleLevel).ConfigureAwait(false);
                var w = await MeasureAsync(s, r, settle, settled, Pids(), load, o).ConfigureAwait(false);
                windows.Add(w);
                var processes = string.Join(", ", w.Processes.Where(p => p.Value.Total >= 0.005).Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Key} {p.Value.Total:0.00}")));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  repeat {r + 1} {s.Key,-8} settle {settle:0.0} s{(settled ? "" : " (not settled)")}: {w.Completed} answered, {w.Lost} lost; machine busy {w.Machine.Busy:0.00} s over {w.WallSeconds:0.00} s (softirq {w.Machine.Softirq:0.00}); generator {w.Generator.User:0.00} user + {w.Generator.System:0.00} sys; {processes}"));
            }
        }
        var steady = subjects.Select(s => Summarize(s, windows, o.Seconds)).ToArray();
        var alone = steady[0];

        var kills = await KillRunsAsync(dns, o).ConfigureAwait(false);

        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| subject ({o.Rate} q/s offered, {o.Seconds} s, median of {o.Repeats}) | qps | lost | latency median | p99 | CPU ms / 1,000 q: machine − idle − generator's user time | minus the server alone | attributed: daemons + ksoftirqd + generator's system time − idle | minus the server alone | load generator user + system (range) |"));
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var s in steady)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {s.Name} | {s.Qps:0} | {s.Lost} of {s.Sent} | {s.MedianUs:0} µs | {s.P99Us:0} µs | {s.AccountMs:0.0} | {s.AccountMs - alone.AccountMs:+0.0;-0.0;0.0} | {s.AttributedMs:0.0} | {s.AttributedMs - alone.AttributedMs:+0.0;-0.0;0.0} | {s.GeneratorMs:0.0} ({s.GeneratorMinMs:0}–{s.GeneratorMaxMs:0}) |"));
        }
        Console.WriteLine();
        Console.WriteLine("| CPU ms / 1,000 q, idle subtracted (median) | unbound n1 / n2 / n3 | l2bal n1 / n2 / n3 | dnsdist | generator user / system | ksoftirqd | machine − idle | of it softirq | rest (machine − generator − these) |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var s in steady)
        {
            string P(string k) => s.ProcessMs[k].ToString("0.0", CultureInfo.InvariantCulture);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {s.Name} | {P("unbound_n1")} / {P("unbound_n2")} / {P("unbound_n3")} | {P("l2bal_n1")} / {P("l2bal_n2")} / {P("l2bal_n3")} | {P("dnsdist")} | {s.GeneratorUserMs:0.0} / {s.GeneratorSystemMs:0.0} | {s.SoftirqdMs:0.0} | {s.MachineNetMs:0.0} | {s.SoftirqMs:0.0} | {s.RestMs:0.0} |"));
        }
        Console.WriteLine();
        Console.WriteLine($"| node 2's unbound SIGKILLed 1 s into 4 s at {KillRate(o)} q/s, a fresh source port per query, {o.Kills} runs alternated | lost per run | lost in all | duplicated | sent |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var group in kills.GroupBy(k => k.Subject))
        {
            Console.WriteLine($"| {KillSubjectName(group.Key)} | {string.Join(", ", group.Select(k => k.Lost))} | {group.Sum(k => k.Lost)} | {group.Sum(k => k.Duplicated)} | {group.Sum(k => k.Sent)} |");
        }

        var artifacts = Path.Combine(LabBinaries.RepoRoot, "artifacts", "bench");
        Directory.CreateDirectory(artifacts);
        var file = Path.Combine(artifacts, $"dns-{started:yyyyMMdd-HHmmss}.json");
        var json = new
        {
            StartedUtc = started,
            Machine = new { Cores = Environment.ProcessorCount, Kernel = Environment.OSVersion.VersionString, LoadAverageAtStart = File.ReadAllText("/proc/loadavg").Trim() },
            Settings = new { o.Rate, o.Seconds, o.Repeats, o.Kills, Generator = o.LabGenerator ? "lab" : "dnsperf", WarmUpSeconds = WarmUp.TotalSeconds, SettleMaxSeconds = SettleMax.TotalSeconds, SettleMarginCores = SettleMargin, IdleLevelCores = idleLevel },
            Steady = steady,
            Windows = windows,
            Kills = kills,
        };
        await File.WriteAllTextAsync(file, JsonSerializer.Serialize(json, JsonOptions) + "\n").ConfigureAwait(false);
        Console.WriteLine($"written {file}");
        return 0;
    }

    private static Options? ParseOptions(string[] args)
    {
        var o = new Options(Rate: 2000, Seconds: 8, Repeats: 3, Kills: 5, LabGenerator: false);
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            int Int() => int.Parse(args[i + 1], CultureInfo.InvariantCulture);
            switch (args[i])
            {
                case "--rate":
                    o = o with { Rate = Int() };
                    break;
                case "--seconds":
                    o = o with { Seconds = Int() };
                    break;
                case "--repeats":
                    o = o with { Repeats = Int() };
                    break;
                case "--kills":
                    o = o with { Kills = Int() };
                    break;
                case "--generator" when args[i + 1] is "dnsperf" or "lab":
                    o = o with { LabGenerator = args[i + 1] == "lab" };
                    break;
                default:
                    Console.Error.WriteLine($"l2lab bench-dns: unknown argument {args[i]} {args[i + 1]} (--rate Q, --seconds N, --repeats R, --kills K, --generator dnsperf|lab)");
                    return null;
            }
        }
        if (args.Length % 2 != 0)
        {
            Console.Error.WriteLine($"l2lab bench-dns: {args[^1]} needs a value");
            return null;
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(o.Rate, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(o.Rate, 20_000);
        ArgumentOutOfRangeException.ThrowIfLessThan(o.Seconds, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(o.Seconds, 60);
        ArgumentOutOfRangeException.ThrowIfLessThan(o.Repeats, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(o.Repeats, 20);
        ArgumentOutOfRangeException.ThrowIfLessThan(o.Kills, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(o.Kills, 20);
        return o;
    }

    // ---- steady windows and their CPU account ----

    /// <summary>ksoftirqd/N: where the kernel runs packet work it deferred (the rest runs in the sending process's system time).</summary>
    private static readonly (string Name, int Pid)[] KernelSoftirqThreads = Directory.GetDirectories("/proc")
        .Select(d => (Dir: d, Pid: int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : 0))
        .Where(d => d.Pid > 0)
        .Select(d => (Comm: ReadComm(d.Dir), d.Pid))
        .Where(d => d.Comm.StartsWith("ksoftirqd/", StringComparison.Ordinal))
        .Select(d => (d.Comm.Replace('/', '_'), d.Pid))
        .OrderBy(d => d.Item1, StringComparer.Ordinal)
        .ToArray();

    private static string ReadComm(string dir)
    {
        try
        {
            return File.ReadAllText(Path.Combine(dir, "comm")).Trim();
        }
        catch (IOException)
        {
            return string.Empty;
        }
    }

    /// <summary>Longest wait for the machine to fall back to its idle level before a window; past it the window runs anyway and says so.</summary>
    private static readonly TimeSpan SettleMax = TimeSpan.FromSeconds(10);

    /// <summary>Settled: two 0.5 s samples in a row at most this many cores above the idle level.</summary>
    private const double SettleMargin = 0.1;

    private static readonly TimeSpan SettleSample = TimeSpan.FromMilliseconds(500);

    private static async Task<double> BusyCoresAsync()
    {
        var before = MachineCpu.Read();
        var clock = Stopwatch.StartNew();
        await Task.Delay(SettleSample).ConfigureAwait(false);
        return (MachineCpu.Read() - before).Busy / clock.Elapsed.TotalSeconds;
    }

    private static async Task<double> CalibrateIdleAsync()
    {
        await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        var samples = new List<double>();
        for (var i = 0; i < 6; i++)
        {
            samples.Add(await BusyCoresAsync().ConfigureAwait(false));
        }
        return Median(samples);
    }

    private static async Task<(double Seconds, bool Settled)> SettleAsync(double idleLevel)
    {
        var clock = Stopwatch.StartNew();
        var quiet = 0;
        while (clock.Elapsed < SettleMax)
        {
            quiet = await BusyCoresAsync().ConfigureAwait(false) <= idleLevel + SettleMargin ? quiet + 1 : 0;
            if (quiet == 2)
            {
                return (clock.Elapsed.TotalSeconds, true);
            }
        }
        return (clock.Elapsed.TotalSeconds, false);
    }

    /// <summary>One window: the machine's CPU by kind, the load generator's, each lab process's, the answers and latencies.</summary>
    private sealed record Window(
        string Subject, int Repeat, double SettleSeconds, bool Settled, double WallSeconds,
        long Sent, long Completed, long Lost, double MedianUs, double P99Us,
        MachineCpu Machine, ProcessCpu Generator, IReadOnlyDictionary<string, ProcessCpu> Processes);

    private static async Task<Window> MeasureAsync(Subject s, int repeat, double settle, bool settled, Dictionary<string, int> pids, LoadRunner load, Options o)
    {
        var procsBefore = pids.ToDictionary(p => p.Key, p => ProcessCpu.Read(p.Value));
        var before = MachineCpu.Read();
        var clock = Stopwatch.StartNew();
        LoadResult result;
        if (s.Server is null)
        {
            await Task.Delay(TimeSpan.FromSeconds(o.Seconds)).ConfigureAwait(false);
            result = new LoadResult(0, 0, 0, double.NaN, double.NaN, default);
        }
        else
        {
            result = await load.RunAsync(s.Server, TimeSpan.FromSeconds(o.Seconds)).ConfigureAwait(false);
        }
        var machine = MachineCpu.Read() - before;
        var wall = clock.Elapsed.TotalSeconds;
        var processes = pids.ToDictionary(p => p.Key, p => ProcessCpu.Read(p.Value) is { } a && procsBefore[p.Key] is { } b ? a - b : new ProcessCpu(double.NaN, double.NaN), StringComparer.Ordinal);
        if (o.LabGenerator)
        {
            // The lab's generator runs in this process: its CPU is l2lab's, not counted again as a lab process.
            processes.Remove("l2lab");
        }
        return new Window(s.Key, repeat + 1, settle, settled, wall, result.Sent, result.Completed, result.Lost, result.MedianUs, result.P99Us,
            machine, result.Generator, processes);
    }

    /// <summary>A subject's figures: medians over the repeats of each window's figures, CPU in ms per 1,000 answered queries with the same repeat's idle rate subtracted.</summary>
    private sealed record SteadySummary(
        string Subject, string Name, double Qps, long Sent, long Lost, double MedianUs, double P99Us,
        double MachineNetMs, double GeneratorMs, double GeneratorMinMs, double GeneratorMaxMs, double GeneratorUserMs, double GeneratorSystemMs,
        double AccountMs, double DaemonsMs, double SoftirqdMs, double AttributedMs, double SoftirqMs, double RestMs, IReadOnlyDictionary<string, double> ProcessMs,
        IReadOnlyList<double> AccountMsPerRepeat, IReadOnlyList<double> AttributedMsPerRepeat);

    private static SteadySummary Summarize(Subject s, List<Window> windows, int seconds)
    {
        var mine = windows.Where(w => w.Subject == s.Key).ToArray();
        // Per 1,000 answered queries, after subtracting what the same repeat's idle window spent per second over this window's length.
        double PerK(Window w, Func<Window, double> cpu)
        {
            var idle = windows.Single(i => i.Subject == "idle" && i.Repeat == w.Repeat);
            return (cpu(w) - cpu(idle) / idle.WallSeconds * w.WallSeconds) / w.Completed * 1e6;
        }
        double Med(Func<Window, double> cpu) => Median(mine.Select(w => PerK(w, cpu)));
        // The generator's user time is its own work; its system time also holds the kernel's path for the
        // queries it sends (softirq run in the sender's context: for the cluster the flood to every node and their filters).
        double Account(Window w) => w.Machine.Busy - w.Generator.User;
        // The lab's daemons: unbound, l2bal and dnsdist of every node and relay; not this harness nor ksoftirqd.
        double Daemons(Window w) => w.Processes.Where(p => p.Key != "l2lab" && !p.Key.StartsWith("ksoftirqd", StringComparison.Ordinal) && !double.IsNaN(p.Value.Total)).Sum(p => p.Value.Total);
        double Softirqd(Window w) => w.Processes.Where(p => p.Key.StartsWith("ksoftirqd", StringComparison.Ordinal) && !double.IsNaN(p.Value.Total)).Sum(p => p.Value.Total);
        double Attributed(Window w) => Daemons(w) + Softirqd(w) + w.Generator.System;
        var processMs = mine[0].Processes.Keys.ToDictionary(k => k, k => Med(w => w.Processes[k].Total), StringComparer.Ordinal);
        var generator = mine.Select(w => PerK(w, w => w.Generator.Total)).ToArray();
        return new SteadySummary(
            s.Key, s.Name,
            Median(mine.Select(w => w.Completed / (double)seconds)),
            mine.Sum(w => w.Sent), mine.Sum(w => w.Lost),
            Median(mine.Select(w => w.MedianUs)), Median(mine.Select(w => w.P99Us)),
            Med(w => w.Machine.Busy), Median(generator), generator.Min(), generator.Max(), Med(w => w.Generator.User), Med(w => w.Generator.System),
            Med(Account), Med(Daemons), Med(Softirqd), Med(Attributed), Med(w => w.Machine.Softirq),
            Med(w => Account(w) - w.Generator.System - w.Processes.Values.Where(p => !double.IsNaN(p.Total)).Sum(p => p.Total)),
            processMs,
            mine.Select(w => PerK(w, Account)).ToArray(), mine.Select(w => PerK(w, Attributed)).ToArray());
    }

    private static double Median(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        return v.Length == 0 ? double.NaN : v.Length % 2 == 1 ? v[v.Length / 2] : (v[(v.Length / 2) - 1] + v[v.Length / 2]) / 2;
    }

    private sealed record LoadResult(long Sent, long Completed, long Lost, double MedianUs, double P99Us, ProcessCpu Generator);

    /// <summary>
    /// The fixed load of a window: dnsperf in the client namespace (its CPU from the shell that ran
    /// it: cutime and cstime once it is reaped), or the lab's own generator in this process (its CPU
    /// from /proc/self/stat over the run).
    /// </summary>
    private sealed class LoadRunner(ClusterLab lab, string dnsperf, string queries, Options o)
    {
        private int _nextPort = 2000;

        public async Task<LoadResult> RunAsync(IPAddress server, TimeSpan duration)
        {
            var seconds = (int)Math.Ceiling(duration.TotalSeconds);
            return o.LabGenerator ? await LabAsync(server, seconds).ConfigureAwait(false) : await DnsperfAsync(server, seconds).ConfigureAwait(false);
        }

        private async Task<LoadResult> DnsperfAsync(IPAddress server, int seconds)
        {
            const string Marker = "generator-stat: ";
            // To a file, not a pipe to this process: reading -v's line per query here cost l2lab 0.4 core at 1000 q/s.
            var output = Path.Combine(Path.GetDirectoryName(queries)!, "dnsperf.out");
            string[] args =
            [
                "-c", $"\"$@\" > '{output}'; s=$?; printf '{Marker}'; cat /proc/$$/stat; exit $s", "sh", dnsperf,
                "-s", server.ToString(), "-d", queries, "-c", "100", "-Q", o.Rate.ToString(CultureInfo.InvariantCulture),
                "-l", seconds.ToString(CultureInfo.InvariantCulture), "-t", "1", "-q", "1000", "-v",
            ];
            var result = (await lab.Client.RunAsync("/bin/sh", args, TimeSpan.FromSeconds(seconds + 30)).ConfigureAwait(false)).EnsureSuccess();
            var text = await File.ReadAllTextAsync(output).ConfigureAwait(false);
            var latencies = new List<double>();
            long sent = 0, lost = 0, completed = 0;
            ProcessCpu? generator = null;
            foreach (var line in text.Split('\n').Concat(result.StdOut.Split('\n')))
            {
                var t = line.Trim();
                if (t.StartsWith("> NOERROR", StringComparison.Ordinal)
                    && double.TryParse(t.Split(' ')[^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var latency))
                {
                    latencies.Add(latency * 1e6);
                }
                else if (t.StartsWith("Queries sent:", StringComparison.Ordinal))
                {
                    sent = Number(t);
                }
                else if (t.StartsWith("Queries completed:", StringComparison.Ordinal))
                {
                    completed = Number(t);
                }
                else if (t.StartsWith("Queries lost:", StringComparison.Ordinal))
                {
                    lost = Number(t);
                }
                else if (t.StartsWith(Marker, StringComparison.Ordinal))
                {
                    generator = ProcessCpu.Parse(t[Marker.Length..], children: true);
                }
            }
            if (generator is null)
            {
                throw new InvalidOperationException($"dnsperf's CPU line missing:\n{result}");
            }
            latencies.Sort();
            return new LoadResult(sent, completed, lost, Quantile(latencies, 0.5), Quantile(latencies, 0.99), generator.Value);
        }

        private async Task<LoadResult> LabAsync(IPAddress server, int seconds)
        {
            var count = o.Rate * seconds;
            var ports = Math.Min(2000, count);
            // Ports apart between runs (DnsLoadOptions.FirstPort), within 2000..62000.
            var first = _nextPort;
            _nextPort = _nextPort + ports > 62_000 ? 2000 : _nextPort + ports;
            var before = ProcessCpu.Read(Environment.ProcessId)!.Value;
            var result = await DnsQueryGenerator.RunAsync(lab.Client, new DnsLoadOptions
            {
                Source = lab.ClientAddresses[0],
                Server = new IPEndPoint(server, DnsServers.Port),
                Ports = ports,
                FirstPort = first,
                Queries = count,
                Rate = o.Rate,
            }).ConfigureAwait(false);
            var generator = ProcessCpu.Read(Environment.ProcessId)!.Value - before;
            return new LoadResult(result.Sent, result.Sent - result.Lost, result.Lost,
                result.LatencyQuantile(0.5).TotalMicroseconds, result.LatencyQuantile(0.99).TotalMicroseconds, generator);
        }

        private static double Quantile(List<double> sorted, double q) =>
            sorted.Count == 0 ? double.NaN : sorted[(int)Math.Min(sorted.Count - 1, Math.Floor(q * sorted.Count))];

        private static long Number(string line) =>
            long.Parse(line.Split(':')[1].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }

    /// <summary>dnsdist on the relay host at <paramref name="address"/>, relaying to the three unbound servers at their own addresses; ready when it answers.</summary>
    private static async Task<LabProcess> StartDnsdistAsync(LabHost relay, string dnsdist, string dir, IPAddress address, bool fastest, ClusterLab lab)
    {
        var check = fastest ? ", checkInterval=1, checkTimeout=100, maxCheckFailures=1" : string.Empty;
        var backends = string.Concat(Enumerable.Range(1, lab.Nodes.Count).Select(k =>
            $"newServer({{address=\"{ClusterLab.NodeAddress(k)}:53\", checkName=\"{DnsServers.ProbeName}\"{check}}})\n"));
        var config = Path.Combine(dir, fastest ? "dnsdist-fastest.conf" : "dnsdist-default.conf");
        // No console: two instances run in one namespace, and neither is controlled.
        await File.WriteAllTextAsync(config, $"setSecurityPollSuffix(\"\")\nsetACL({{\"198.18.0.0/15\"}})\nsetLocal(\"{address}:53\")\n{backends}").ConfigureAwait(false);
        var process = relay.Start(dnsdist, "--supervised", "--disable-syslog", "-C", config);
        try
        {
            await DnsServers.WaitReadyAsync(lab.Client, new IPEndPoint(address, DnsServers.Port), TimeSpan.FromSeconds(20)).ConfigureAwait(false);
        }
        catch (TimeoutException e)
        {
            process.Dispose();
            throw new TimeoutException($"{e.Message}\n{process.Describe()}", e);
        }
        // Every backend up (its first check passed) before the run.
        await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        return process;
    }

    // ---- kill runs ----

    private static int KillRate(Options o) => Math.Min(o.Rate, 2000);

    private static string KillSubjectName(string key) => key switch
    {
        "cluster" => "L2 cluster (probe every 100 ms and woken by the first port-unreachable, refusal: at once)",
        "dnsdist" => "dnsdist, default check (checkInterval=1 s, checkTimeout=1000 ms, maxCheckFailures=1)",
        _ => "dnsdist, fastest check (checkInterval=1 s, checkTimeout=100 ms, maxCheckFailures=1)",
    };

    /// <summary>One kill run: what was lost (and when it was sent, after the kill), duplicated; for the cluster node 2's early probes.</summary>
    private sealed record KillRun(string Subject, int Run, long Sent, long Lost, long Duplicated, double? FirstLostMs, double? LastLostMs, long? EarlyProbes);

    private static async Task<List<KillRun>> KillRunsAsync(DnsClusterLab dns, Options o)
    {
        (string Key, IPAddress Address)[] subjects = [("cluster", ClusterLab.VipAddress), ("dnsdist", DnsdistAddress), ("dnsdist_fastest", DnsdistFastestAddress)];
        var runs = new List<KillRun>();
        for (var k = 0; k < o.Kills; k++)
        {
            // Port ranges apart per run (8,000 ports at 2,000 q/s); the three subjects differ by destination.
            var firstPort = 2000 + (k % 5 * 8_000);
            foreach (var (key, address) in subjects.Skip(k % 3).Concat(subjects.Take(k % 3)))
            {
                var wakes = key == "cluster" ? (await dns.StatusAsync(2).ConfigureAwait(false)).Wake.GetValueOrDefault("wakes") : 0;
                var run = await KillRunAsync(dns, new IPEndPoint(address, DnsServers.Port), KillRate(o), firstPort).ConfigureAwait(false);
                if (key == "cluster")
                {
                    // Read after the restart: the victim's daemon kept running, so its wake counter spans the kill.
                    run = run with { EarlyProbes = (await dns.StatusAsync(2).ConfigureAwait(false)).Wake.GetValueOrDefault("wakes") - wakes };
                }
                run = run with { Subject = key, Run = k + 1 };
                runs.Add(run);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  kill run {k + 1} {key}: lost {run.Lost} of {run.Sent} (sent {run.FirstLostMs:0} to {run.LastLostMs:0} ms after the kill), duplicated {run.Duplicated}{(run.EarlyProbes is { } e ? $", node 2's early probes {e}" : "")}"));
            }
        }
        return runs;
    }

    /// <summary>
    /// 4 s of queries, node 2's unbound SIGKILLed at 1 s, restarted after, the cluster and dnsdist's
    /// checks back before returning. Every design's losses ended within 0.8 s of the kill in earlier runs
    /// of 6 s (docs/benchmarks.md), so 3 s after it count them all.
    /// </summary>
    private static async Task<KillRun> KillRunAsync(DnsClusterLab dns, IPEndPoint server, int rate, int firstPort)
    {
        var clock = Stopwatch.StartNew();
        var load = DnsQueryGenerator.RunAsync(dns.Lab.Client, new DnsLoadOptions
        {
            Source = dns.Lab.ClientAddresses[0],
            Server = server,
            Ports = rate * 4,
            Queries = rate * 4,
            Rate = rate,
            FirstPort = firstPort,
        }, clock);
        await Task.Delay(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        var killedAt = clock.Elapsed;
        ClusterLab.Signal(dns.DnsServer(2)!, LabSignals.Kill);
        var result = await load.ConfigureAwait(false);
        dns.StartDnsServer(2);
        await dns.WaitAllActiveAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        // dnsdist checks each backend once a second: two checks' time to mark node 2 up again.
        await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        var lost = result.Queries.Where(q => q.Answers == 0).Select(q => (q.SentAt - killedAt).TotalMilliseconds).ToArray();
        return new KillRun(string.Empty, 0, result.Sent, lost.Length, result.Duplicated,
            lost.Length == 0 ? null : lost.Min(), lost.Length == 0 ? null : lost.Max(), null);
    }
}
