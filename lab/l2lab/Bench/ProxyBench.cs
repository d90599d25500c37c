using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using L2Balance.Lab;

namespace L2Balance.Lab.Cli.Bench;

/// <summary>
/// <c>l2lab bench-proxy</c> (issue 3): in one ProxyLab (client — proxy — target namespaces), measures
/// the direct path (forwarding on the proxy host, no proxy), l2proxy (splice relay and the copy
/// relay on request, and 2 worker processes), Dante's sockd and microsocks, each <see cref="Repeats"/> times (microsocks once), and prints medians with
/// ratios against Dante and the direct path; writes JSON to artifacts/bench/. A benchmark, not a
/// test: nothing passes or fails. Every measurement is bounded in time. Beside each rate it gives
/// the CPU the proxy and the load generator spent per CONNECT and per gigabyte: on a machine whose
/// cores the three share, the rate is what the cores allow, and the CPU per unit of work shows
/// which party costs what.
/// </summary>
internal static partial class ProxyBench
{
    /// <summary>Runs per subject; env L2LAB_BENCH_REPEATS overrides (1..9) for quick looks.</summary>
    private static readonly int Repeats = int.TryParse(Environment.GetEnvironmentVariable("L2LAB_BENCH_REPEATS"), CultureInfo.InvariantCulture, out var r) && r is >= 1 and <= 9 ? r : 3;
    private const int ConnectWorkers = 50;
    private const int IdleSessions = 1000;

    /// <summary>USER_HZ, the unit of /proc/PID/stat times: 100 on every Linux architecture .NET runs on.</summary>
    private const double ClockTicksPerSecond = 100;

    /// <summary>
    /// Env L2LAB_BENCH_PARTS=rss,tcp,connect,udp,gssapi measures only those parts (while tuning one path);
    /// the full run, all parts, is the benchmark. gssapi runs once, not per subject (ProxyBench.Gssapi.cs).
    /// </summary>
    private static readonly string[] Parts = Environment.GetEnvironmentVariable("L2LAB_BENCH_PARTS") is { Length: > 0 } parts
        ? parts.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
        : ["rss", "tcp", "connect", "udp", "gssapi"];

    private static readonly TimeSpan ThroughputDuration = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan ConnectDuration = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan UdpDuration = TimeSpan.FromSeconds(3);

    /// <summary>The steadiness run's window: issue 3 asks for the rate to hold within ±10 % over 60 s.</summary>
    private static readonly TimeSpan SteadyWindow = TimeSpan.FromSeconds(5);
    private const int DefaultSteadySeconds = 60;
    private static readonly TimeSpan SteadyWarmUp = TimeSpan.FromSeconds(3);
    private const string Usage = "usage: l2lab bench-proxy [--steady-seconds N (0 = skip, else a multiple of 5 up to 600; default 60)] [--steady-subjects l2proxy,dante,...]";
    private static readonly IPEndPoint ProxyEndPoint = new(ProxyLab.ProxyInsideV4, 1080);

    private static readonly string[] Metrics =
    [
        "tcp_1_stream_gbit_s", "tcp_8_streams_gbit_s",
        "proxy_cpu_ms_per_gbyte_1_stream", "proxy_cpu_ms_per_gbyte_8_streams", "loadgen_cpu_ms_per_gbyte_8_streams",
        "connect_per_s_target_closes", "connect_p50_ms_target_closes", "connect_p99_ms_target_closes",
        "connect_per_s_client_closes", "connect_p50_ms_client_closes", "connect_p99_ms_client_closes",
        "proxy_cpu_us_per_connect_target_closes", "proxy_cpu_us_per_connect_client_closes",
        "loadgen_cpu_us_per_connect_target_closes", "loadgen_cpu_us_per_connect_client_closes",
        "rss_kib_per_idle_session", "udp_round_trips_per_s",
        "steady_connect_per_s_target_closes", "steady_max_dev_pct_target_closes",
        "steady_connect_per_s_client_closes", "steady_max_dev_pct_client_closes",
    ];

    /// <summary>The two closing patterns of the CONNECT-rate runs and the target port of each.</summary>
    private static readonly (string Closes, int Port)[] ClosingPatterns =
        [("target_closes", BenchTargets.TargetClosesPort), ("client_closes", BenchTargets.ClientClosesPort)];

    /// <summary>
    /// One steadiness run: a subject, a closing pattern, its per-window rates and, per window, the
    /// CPU per CONNECT of the proxy and of the load generator, how busy the machine's cores were and
    /// how much of them neither of the two used (so a slow window shows whether the proxy, the load
    /// generator or something else took the time).
    /// </summary>
    private sealed record SteadyRun(
        double window_seconds, double seconds, double[] rates_per_s, double median_per_s, double max_deviation_pct,
        double p50_ms, double p99_ms, long failures,
        double[] proxy_cpu_us_per_connect, double[] loadgen_cpu_us_per_connect, double[] machine_busy_pct, double[] others_cpu_pct);

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>
    /// A subject of the benchmark. <paramref name="Runs"/> caps its repeats; <paramref name="ByDefault"/>
    /// false leaves it out unless L2LAB_BENCH_ONLY names it (keeps the default run under 10 minutes).
    /// </summary>
    private sealed record Subject(string Name, Func<ProxyLab, string, LabProcess?> Start, bool HasUdp, bool HasRss, int Runs = 9, bool ByDefault = true);

    public static async Task<int> RunAsync(string[] args)
    {
        var steadySeconds = DefaultSteadySeconds;
        string[] steadyNames = ["l2proxy", "dante"];
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--steady-seconds" when i + 1 < args.Length:
                    if (!int.TryParse(args[++i], NumberStyles.None, CultureInfo.InvariantCulture, out steadySeconds)
                        || steadySeconds > 600 || steadySeconds % (int)SteadyWindow.TotalSeconds != 0)
                    {
                        Console.Error.WriteLine($"l2lab bench-proxy: --steady-seconds: '{args[i]}' is not 0 or a multiple of {SteadyWindow.TotalSeconds:0} up to 600");
                        return 64;
                    }

                    break;
                case "--steady-subjects" when i + 1 < args.Length:
                    steadyNames = args[++i].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
                    break;
                default:
                    Console.Error.WriteLine($"l2lab bench-proxy: unsupported argument '{args[i]}'");
                    Console.Error.WriteLine(Usage);
                    return 64;
            }
        }

        var l2proxy = LabBinaries.L2Proxy;
        var danted = LabBinaries.Find("danted") ?? LabBinaries.Require("sockd", "dante-server");
        var microsocks = LabBinaries.Require("microsocks", "microsocks");
        var prlimit = LabBinaries.Require("prlimit", "util-linux");
        var subjects = new[]
        {
            new Subject("direct", (_, _) => null, true, false),
            new Subject("l2proxy", (lab, dir) => StartL2Proxy(lab, dir, prlimit, l2proxy, "splice"), true, true),
            // The copy relay is for comparison while tuning the splice relay: L2LAB_BENCH_ONLY=...,l2proxy-copy.
            new Subject("l2proxy-copy", (lab, dir) => StartL2Proxy(lab, dir, prlimit, l2proxy, "copy"), true, true, ByDefault: false),
            new Subject("l2proxy-w2", (lab, dir) => StartL2Proxy(lab, dir, prlimit, l2proxy, "splice", workers: 2), true, true),
            // Issue 18: the external address is also an internal one, so outgoing ports come from a third of the range (docs/design.md#single-ip-mode).
            new Subject("l2proxy-single-ip", (lab, dir) => StartL2Proxy(lab, dir, prlimit, l2proxy, "splice", singleIp: true), true, true, ByDefault: false),
            new Subject("dante", (lab, dir) => StartDante(lab, dir, prlimit, danted), true, true),
            // One run: microsocks is the reference for the CONNECT rate only, and its slow bulk
            // throughput uses the full time of each measurement.
            new Subject("microsocks", (lab, _) => lab.Proxy.Start(prlimit, "--nofile=20000:20000", microsocks, "-i", "198.18.1.1", "-p", "1080", "-b", "198.18.2.1"), false, true, Runs: 1),
        };

        // Env L2LAB_BENCH_ONLY=direct,l2proxy runs a subset (while tuning); the full run is the benchmark.
        if (Environment.GetEnvironmentVariable("L2LAB_BENCH_ONLY") is { Length: > 0 } only)
        {
            var names = only.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            subjects = subjects.Where(s => names.Contains(s.Name)).ToArray();
        }
        else
        {
            subjects = subjects.Where(s => s.ByDefault).ToArray();
        }

        if (steadyNames.FirstOrDefault(n => !KnownSubject(n)) is { } unknown)
        {
            Console.Error.WriteLine($"l2lab bench-proxy: --steady-subjects: '{unknown}' is no proxy of this benchmark");
            Console.Error.WriteLine(Usage);
            return 64;
        }

        Console.WriteLine($"bench-proxy: {Environment.ProcessorCount} cores, kernel {Environment.OSVersion.Version}; {Repeats} runs each (microsocks {Math.Min(Repeats, 1)}), medians");
        await using var lab = await ProxyLab.CreateAsync().ConfigureAwait(false);
        foreach (var host in new[] { lab.Client, lab.Proxy, lab.Target })
        {
            // Every subject gets the same tuning: wide ephemeral range, TIME_WAIT reuse for outgoing connects.
            host.SetSysctl("net.ipv4.ip_local_port_range", "1024 65000");
            host.SetSysctl("net.ipv4.tcp_tw_reuse", "1");
        }

        var dir = lab.Network.CreateTempDirectory("bench");
        using var targets = BenchTargets.Start(lab.Target);
        using var supply = new NamespaceSocketSupply(lab.Client, AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp, 512);
        var results = new Dictionary<string, Dictionary<string, List<double>>>();
        var steady = new Dictionary<string, Dictionary<string, SteadyRun>>();
        foreach (var subject in subjects)
        {
            var values = results[subject.Name] = Metrics.ToDictionary(m => m, _ => new List<double>());
            var runs = Math.Min(Repeats, subject.Runs);
            for (int run = 1; run <= runs; run++)
            {
                Console.WriteLine($"== {subject.Name} run {run}/{runs}");
                try
                {
                    await MeasureAsync(lab, dir, subject, targets, supply, values).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
                {
                    // One failed run (a proxy out of ports, say) leaves that run out; the benchmark goes on.
                    Console.WriteLine($"   run failed: {e.GetType().Name}: {e.Message}");
                }
            }
        }

        // The steadiness runs come last: a proxy that collapses in them (Dante, client closes: its
        // outgoing sockets' TIME_WAIT) leaves the namespaces short of ports for 60 s.
        foreach (var subject in subjects)
        {
            var values = results[subject.Name];
            if (steadySeconds > 0 && steadyNames.Contains(subject.Name))
            {
                Console.WriteLine($"== {subject.Name} steadiness, {steadySeconds} s per closing pattern");
                var runs = steady[subject.Name] = await SteadyAsync(lab, dir, subject, supply, TimeSpan.FromSeconds(steadySeconds)).ConfigureAwait(false);
                foreach (var (closes, r) in runs)
                {
                    values[$"steady_connect_per_s_{closes}"].Add(r.median_per_s);
                    values[$"steady_max_dev_pct_{closes}"].Add(r.max_deviation_pct);
                }
            }
        }

        List<GssapiRow> gssapi = Parts.Contains("gssapi") ? await GssapiAsync(lab, dir, targets).ConfigureAwait(false) : [];
        var medians = results.ToDictionary(r => r.Key, r => r.Value.ToDictionary(m => m.Key, m => ConnectRateResult.Median(m.Value)));
        Console.WriteLine();
        Console.WriteLine(Table(medians, subjects.Select(s => s.Name).ToArray()));
        if (steady.Count > 0)
        {
            Console.WriteLine(SteadyTable(steady));
        }

        if (gssapi.Count > 0)
        {
            Console.WriteLine(GssapiTable(gssapi));
        }

        var artifacts = Path.Combine(LabBinaries.RepoRoot, "artifacts", "bench");
        Directory.CreateDirectory(artifacts);
        var file = Path.Combine(artifacts, $"proxy-{DateTime.UtcNow:yyyyMMdd-HHmmss}.json");
        var json = new
        {
            machine = new { cores = Environment.ProcessorCount, kernel = Environment.OSVersion.VersionString },
            settings = new
            {
                repeats = Repeats, connect_workers = ConnectWorkers, idle_sessions = IdleSessions,
                throughput_seconds = ThroughputDuration.TotalSeconds, connect_seconds = ConnectDuration.TotalSeconds, udp_seconds = UdpDuration.TotalSeconds,
                steady_seconds = steadySeconds, steady_window_seconds = SteadyWindow.TotalSeconds, steady_warm_up_seconds = SteadyWarmUp.TotalSeconds,
            },
            medians,
            runs = results,
            steady,
            gssapi,
        };
        await File.WriteAllTextAsync(file, JsonSerializer.Serialize(json, JsonOptions)).ConfigureAwait(false);
        Console.WriteLine($"written {file}");
        return 0;
    }

    private static async Task MeasureAsync(ProxyLab lab, string dir, Subject subject, BenchTargets targets, NamespaceSocketSupply supply, Dictionary<string, List<double>> values)
    {
        // A fresh proxy process per run: RSS starts from the same point and no run inherits another's state.
        var process = subject.Start(lab, dir);
        if (process is null)
        {
            lab.Proxy.EnableForwarding();
        }
        else
        {
            await lab.Client.WaitForTcpPortAsync(ProxyLab.ProxyInsideV4, 1080, TimeSpan.FromSeconds(15), process.Describe, process).ConfigureAwait(false);
        }

        try
        {
            var load = new SocksLoad(supply, process is null ? null : ProxyEndPoint);
            var target = ProxyLab.TargetV4;
            if (subject.HasRss && Parts.Contains("rss"))
            {
                values["rss_kib_per_idle_session"].Add(await IdleRssAsync(lab, load, new IPEndPoint(target, BenchTargets.SinkPort)).ConfigureAwait(false));
                await Task.Delay(500).ConfigureAwait(false);
            }

            var sink = new IPEndPoint(target, BenchTargets.SinkPort);
            if (Parts.Contains("tcp"))
            {
                // The direct path has no proxy process: its proxy CPU is n/a, not 0.
                var one = await load.ThroughputAsync(targets, sink, 1, ThroughputDuration, () => Cpu(lab)).ConfigureAwait(false);
                values["tcp_1_stream_gbit_s"].Add(one.BitsPerSecond / 1e9);
                values["proxy_cpu_ms_per_gbyte_1_stream"].Add(process is null ? double.NaN : PerGigabyteMs(one.Cpu.ProxySeconds, one.Bytes));
                var eight = await load.ThroughputAsync(targets, sink, 8, ThroughputDuration, () => Cpu(lab)).ConfigureAwait(false);
                values["tcp_8_streams_gbit_s"].Add(eight.BitsPerSecond / 1e9);
                values["proxy_cpu_ms_per_gbyte_8_streams"].Add(process is null ? double.NaN : PerGigabyteMs(eight.Cpu.ProxySeconds, eight.Bytes));
                values["loadgen_cpu_ms_per_gbyte_8_streams"].Add(PerGigabyteMs(eight.Cpu.LoadGeneratorSeconds, eight.Bytes));
            }

            foreach (var (closes, port) in Parts.Contains("connect") ? ClosingPatterns : [])
            {
                var cpuStart = Cpu(lab);
                var r = await load.ConnectRateAsync(new IPEndPoint(target, port), closes == "target_closes", ConnectWorkers, ConnectDuration).ConfigureAwait(false);
                var used = Cpu(lab) - cpuStart;
                values[$"connect_per_s_{closes}"].Add(r.PerSecond);
                values[$"connect_p50_ms_{closes}"].Add(r.P50Ms);
                values[$"connect_p99_ms_{closes}"].Add(r.P99Ms);
                values[$"proxy_cpu_us_per_connect_{closes}"].Add(process is null || r.Count == 0 ? double.NaN : used.ProxySeconds / r.Count * 1e6);
                values[$"loadgen_cpu_us_per_connect_{closes}"].Add(r.Count == 0 ? double.NaN : used.LoadGeneratorSeconds / r.Count * 1e6);
                Console.WriteLine($"   connect ({closes.Replace('_', ' ')}): {r.PerSecond:0}/s p50 {r.P50Ms:0.00} ms p99 {r.P99Ms:0.00} ms, {r.Failures} failed");
                await Task.Delay(500).ConfigureAwait(false);
            }

            if (subject.HasUdp && Parts.Contains("udp"))
            {
                values["udp_round_trips_per_s"].Add(await load.UdpRoundTripsAsync(lab.Client, new IPEndPoint(target, BenchTargets.UdpEchoPort), UdpDuration).ConfigureAwait(false));
            }

            Console.WriteLine("   " + string.Join(", ", values.Where(v => v.Value.Count > 0).Select(v => $"{v.Key} {v.Value[^1].ToString("0.###", CultureInfo.InvariantCulture)}")));
        }
        finally
        {
            if (process is null)
            {
                lab.Proxy.SetSysctl("net.ipv4.ip_forward", "0");
                lab.Proxy.SetSysctl("net.ipv6.conf.all.forwarding", "0");
            }
            else
            {
                if (process.HasExited)
                {
                    Console.WriteLine($"   {subject.Name} exited during the run:\n{process.Describe()}");
                }

                process.Dispose();
            }
        }
    }

    /// <summary>The proxies a steadiness run can be asked for (the direct path has no CONNECT to steady).</summary>
    private static bool KnownSubject(string name) => name is "l2proxy" or "l2proxy-copy" or "l2proxy-w2" or "dante" or "microsocks";

    /// <summary>
    /// The steadiness run: per closing pattern a fresh proxy process and one CONNECT-rate run of
    /// <paramref name="duration"/>, counted per <see cref="SteadyWindow"/>.
    /// </summary>
    private static async Task<Dictionary<string, SteadyRun>> SteadyAsync(ProxyLab lab, string dir, Subject subject, NamespaceSocketSupply supply, TimeSpan duration)
    {
        var runs = new Dictionary<string, SteadyRun>();
        foreach (var (closes, port) in ClosingPatterns)
        {
            using var process = subject.Start(lab, dir) ?? throw new InvalidOperationException("the steadiness run needs a proxy");
            await lab.Client.WaitForTcpPortAsync(ProxyLab.ProxyInsideV4, 1080, TimeSpan.FromSeconds(15), process.Describe, process).ConfigureAwait(false);
            var load = new SocksLoad(supply, ProxyEndPoint);
            // A discarded warm-up, the same for every subject (a fresh process fills its pools, Dante
            // forks its children), so the windows show the steady state.
            _ = await load.ConnectRateAsync(new IPEndPoint(ProxyLab.TargetV4, port), closes == "target_closes", ConnectWorkers, SteadyWarmUp).ConfigureAwait(false);
            var windows = (int)(duration / SteadyWindow);
            var sampler = SampleWindowsAsync(lab, windows);
            var r = await load.ConnectRateAsync(new IPEndPoint(ProxyLab.TargetV4, port), closes == "target_closes", ConnectWorkers, duration, SteadyWindow).ConfigureAwait(false);
            var samples = await sampler.ConfigureAwait(false);
            var connects = r.WindowRates.Select(rate => rate * SteadyWindow.TotalSeconds).ToArray();
            var coreSeconds = SteadyWindow.TotalSeconds * Environment.ProcessorCount;
            double[] PerWindow(Func<CpuTime, double, double, double> value) => Enumerable.Range(0, Math.Min(windows, r.WindowRates.Length))
                .Select(i => value(samples[i + 1].Cpu - samples[i].Cpu, samples[i + 1].BusySeconds - samples[i].BusySeconds, connects[i]))
                .ToArray();
            var run = new SteadyRun(
                SteadyWindow.TotalSeconds, duration.TotalSeconds, r.WindowRates, r.WindowMedian, r.MaxDeviationPercent, r.P50Ms, r.P99Ms, r.Failures,
                PerWindow((cpu, _, n) => cpu.ProxySeconds / n * 1e6),
                PerWindow((cpu, _, n) => cpu.LoadGeneratorSeconds / n * 1e6),
                PerWindow((_, busy, _) => busy / coreSeconds * 100),
                PerWindow((cpu, busy, _) => (busy - cpu.ProxySeconds - cpu.LoadGeneratorSeconds) / coreSeconds * 100));
            runs[closes] = run;
            string Row(double[] v) => string.Join(' ', v.Select(x => x.ToString("0", CultureInfo.InvariantCulture)));
            Console.WriteLine($"   steady ({closes.Replace('_', ' ')}): median {run.median_per_s:0}/s, max deviation {run.max_deviation_pct:0.0} %, p99 {run.p99_ms:0.00} ms, {run.failures} failed; per {SteadyWindow.TotalSeconds:0} s: {Row(run.rates_per_s)}");
            Console.WriteLine($"      proxy CPU us/CONNECT: {Row(run.proxy_cpu_us_per_connect)}; load generator: {Row(run.loadgen_cpu_us_per_connect)}; machine busy %: {Row(run.machine_busy_pct)}; of it neither's %: {Row(run.others_cpu_pct)}");
            if (process.HasExited)
            {
                Console.WriteLine($"   {subject.Name} exited during the run:\n{process.Describe()}");
            }

            // Let TIME_WAIT and the proxy's exit settle before the next pattern.
            await Task.Delay(1000).ConfigureAwait(false);
        }

        return runs;
    }

    /// <summary>
    /// Samples the CPU clocks at the start of the steadiness run and at the end of each of its
    /// <paramref name="windows"/> windows (started just before the run, so aligned with its windows
    /// to within a few milliseconds).
    /// </summary>
    private static async Task<List<(CpuTime Cpu, double BusySeconds)>> SampleWindowsAsync(ProxyLab lab, int windows)
    {
        var samples = new List<(CpuTime, double)>(windows + 1);
        var start = Stopwatch.GetTimestamp();
        for (int w = 0; w <= windows; w++)
        {
            var early = (SteadyWindow * w) - Stopwatch.GetElapsedTime(start);
            if (early > TimeSpan.Zero)
            {
                await Task.Delay(early).ConfigureAwait(false);
            }

            samples.Add((Cpu(lab), MachineBusySeconds()));
        }

        return samples;
    }

    /// <summary>CPU seconds all cores have spent not idle since boot (/proc/stat: all but idle and iowait).</summary>
    internal static double MachineBusySeconds()
    {
        var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // cpu user nice system idle iowait irq softirq steal ...
        long busy = 0;
        for (int i = 1; i < Math.Min(fields.Length, 9); i++)
        {
            if (i is not 4 and not 5)
            {
                busy += long.Parse(fields[i], CultureInfo.InvariantCulture);
            }
        }

        return busy / ClockTicksPerSecond;
    }

    private static string SteadyTable(Dictionary<string, Dictionary<string, SteadyRun>> steady)
    {
        var text = new StringBuilder();
        var first = steady.Values.First().Values.First();
        text.Append(CultureInfo.InvariantCulture, $"steadiness: CONNECT/s per {first.window_seconds:0} s window over {first.seconds:0} s (a fresh process per pattern, {SteadyWarmUp.TotalSeconds:0} s warm-up not counted); max deviation from the run's median\n");
        foreach (var (name, runs) in steady)
        {
            foreach (var (closes, r) in runs)
            {
                text.Append(CultureInfo.InvariantCulture, $"{name,-12}{closes,-15}{"median " + r.median_per_s.ToString("0", CultureInfo.InvariantCulture),-14}{"max dev " + r.max_deviation_pct.ToString("0.0", CultureInfo.InvariantCulture) + " %",-17} ");
                text.AppendJoin(' ', r.rates_per_s.Select(v => v.ToString("0", CultureInfo.InvariantCulture)));
                text.Append('\n');
                text.Append($"{string.Empty,-12}{"  CPU us/CONNECT, proxy | load generator:",-46}");
                text.AppendJoin(' ', r.proxy_cpu_us_per_connect.Select(v => v.ToString("0", CultureInfo.InvariantCulture)));
                text.Append(" | ");
                text.AppendJoin(' ', r.loadgen_cpu_us_per_connect.Select(v => v.ToString("0", CultureInfo.InvariantCulture)));
                text.Append('\n');
                text.Append($"{string.Empty,-12}{"  % of the cores used by neither:",-46}");
                text.AppendJoin(' ', r.others_cpu_pct.Select(v => v.ToString("0", CultureInfo.InvariantCulture)));
                text.Append('\n');
            }
        }

        return text.ToString();
    }

    /// <summary>RSS of everything in the proxy namespace with <see cref="IdleSessions"/> idle sessions, minus without, per session (KiB).</summary>
    private static async Task<double> IdleRssAsync(ProxyLab lab, SocksLoad load, IPEndPoint target)
    {
        // Warm the process up (pools, Dante's children) with a few sessions first, so the delta is the sessions' own cost.
        foreach (var s in await load.HoldAsync(target, 20).ConfigureAwait(false))
        {
            s.Dispose();
        }

        await Task.Delay(500).ConfigureAwait(false);
        var before = ProxyRssKiB(lab);
        var held = await load.HoldAsync(target, IdleSessions).ConfigureAwait(false);
        await Task.Delay(1000).ConfigureAwait(false);
        var after = ProxyRssKiB(lab);
        foreach (var s in held)
        {
            s.Dispose();
        }

        return (after - before) / (double)IdleSessions;
    }

    /// <summary>CPU milliseconds per 10^9 bytes.</summary>
    private static double PerGigabyteMs(double cpuSeconds, long bytes) => bytes > 0 ? cpuSeconds / bytes * 1e12 : double.NaN;

    /// <summary>
    /// CPU used so far by the proxy and by the load generator. The proxy's is the sum over every
    /// process in the proxy namespace of user and system time, its reaped children's included (Dante
    /// forks), from /proc/PID/stat in clock ticks of 10 ms. Kernel work done for a packet is counted
    /// where it runs: mostly in the sender's system call, so each side's figure includes the receive
    /// processing of what it sends. The load generator is this process (clients and target servers).
    /// </summary>
    private static CpuTime Cpu(ProxyLab lab)
    {
        double ticks = 0;
        foreach (var pid in lab.Proxy.ProcessIds())
        {
            try
            {
                var stat = File.ReadAllText($"/proc/{pid}/stat");
                // The fields after the command's closing parenthesis: state is [0], utime [11], stime [12], cutime [13], cstime [14].
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                for (int i = 11; i <= 14; i++)
                {
                    ticks += long.Parse(fields[i], CultureInfo.InvariantCulture);
                }
            }
            catch (IOException)
            {
                // Exited meanwhile: a reaped child's time is in its parent's cutime.
            }
        }

        using var self = Process.GetCurrentProcess();
        return new CpuTime(ticks / ClockTicksPerSecond, self.TotalProcessorTime.TotalSeconds);
    }

    /// <summary>Sum of VmRSS (KiB) of every process in the proxy namespace (Dante runs several).</summary>
    private static long ProxyRssKiB(ProxyLab lab)
    {
        long total = 0;
        var pids = lab.Proxy.ProcessIds();
        foreach (var pid in pids)
        {
            try
            {
                var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
                if (line is not null)
                {
                    total += long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
                }
            }
            catch (IOException)
            {
                // Exited meanwhile.
            }
        }

        return total;
    }

    private const string Conf = """
        internal: 198.18.1.1 port = 1080
        external: 198.18.2.1
        logoutput: stderr
        client pass { from: 198.18.1.0/24 to: 0/0 }
        socks pass { from: 0/0 to: 0/0 }

        """;

    private static LabProcess StartL2Proxy(ProxyLab lab, string dir, string prlimit, string l2proxy, string relay, int workers = 1, bool singleIp = false)
    {
        // No per-session log lines (no log: in the rules), like the Dante configuration.
        var path = Path.Combine(dir, $"l2proxy-{workers}{(singleIp ? "-single-ip" : "")}.conf");
        var single = singleIp ? "internal: 198.18.2.1 port = 1080\nudp.portrange: 32768-42178\n" : string.Empty;
        File.WriteAllText(path, Conf + single + (workers > 1 ? $"workers: {workers}\n" : string.Empty));
        // Env L2PROXY_PIPE_SIZE passes through to the proxy (while tuning); unset, the proxy's default holds.
        var pipeSize = Environment.GetEnvironmentVariable("L2PROXY_PIPE_SIZE") is { Length: > 0 } size ? $"L2PROXY_PIPE_SIZE={size}" : "L2PROXY_PIPE_SIZE=";
        return lab.Proxy.Start(prlimit, "--nofile=20000:20000", "/usr/bin/env", $"L2PROXY_RELAY={relay}", pipeSize, l2proxy, "--config", path);
    }

    private static LabProcess StartDante(ProxyLab lab, string dir, string prlimit, string danted)
    {
        var path = Path.Combine(dir, "sockd.conf");
        File.WriteAllText(path, "clientmethod: none\nsocksmethod: none\nuser.privileged: root\nuser.unprivileged: nobody\n" + Conf);
        return lab.Proxy.Start(prlimit, "--nofile=20000:20000", danted, "-f", path);
    }

    private static string Table(Dictionary<string, Dictionary<string, double>> medians, string[] names)
    {
        var text = new StringBuilder();
        string Cell(double v) => double.IsNaN(v) ? "n/a" : v >= 100 ? v.ToString("0", CultureInfo.InvariantCulture) : v.ToString("0.00", CultureInfo.InvariantCulture);
        double Of(string name, string metric) => medians.TryGetValue(name, out var m) ? m[metric] : double.NaN;
        string Ratio(double a, double b) => double.IsNaN(a) || double.IsNaN(b) || b == 0 ? "n/a" : (a / b).ToString("0.00", CultureInfo.InvariantCulture);
        text.Append($"{"metric (median of " + Repeats + "; msocks 1)",-32}");
        foreach (var name in names)
        {
            text.Append($"{name,14}");
        }

        text.Append($"{"l2p/dante",11}{"l2p/direct",11}\n");
        foreach (var metric in Metrics)
        {
            text.Append($"{metric,-32}");
            foreach (var name in names)
            {
                text.Append($"{Cell(medians[name][metric]),14}");
            }

            // A deviation in % has no meaningful ratio.
            var ratios = metric.Contains("_pct_", StringComparison.Ordinal)
                ? ("", "")
                : (Ratio(Of("l2proxy", metric), Of("dante", metric)), Ratio(Of("l2proxy", metric), Of("direct", metric)));
            text.Append($"{ratios.Item1,11}{ratios.Item2,11}\n");
        }

        return text.ToString();
    }
}
