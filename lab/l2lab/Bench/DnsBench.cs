using System.Diagnostics;
using System.Globalization;
using System.Net;
using L2Balance.Lab.Cluster;

namespace L2Balance.Lab.Cli.Bench;

/// <summary>
/// Issue 16's DNS benchmark, one run on one lab (<see cref="DnsClusterLab"/>: three nodes with
/// unbound, l2bal with udp/53 at affinity none): one unbound alone (node 1's own address), the L2
/// cluster (the VIP) and dnsdist (Debian) in a namespace of its own on the segment relaying to the
/// same three unbound servers. Steady runs with dnsperf at a fixed rate (qps, lost, latency median
/// and p99 from its per-query lines, machine CPU from /proc/stat per 1,000 queries minus that of the
/// server alone); then a node's unbound killed mid-run under the lab's own generator (a fresh source
/// port per query, as a resolver) for the cluster and for dnsdist at its default health check and at
/// its fastest. No pass/fail: a table for docs/benchmarks.md.
/// </summary>
internal static class DnsBench
{
    private static readonly IPAddress DnsdistAddress = IPAddress.Parse("198.18.0.20");

    public static async Task<int> RunAsync(string[] args)
    {
        var rate = 4000;
        var seconds = 10;
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--rate":
                    rate = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
                    break;
                case "--seconds":
                    seconds = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
                    break;
                default:
                    Console.Error.WriteLine($"l2lab bench-dns: unknown argument {args[i]}");
                    return 2;
            }
        }
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rate, 20_000);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(seconds, 60);
        if (!DnsClusterLab.HasAffinityOption)
        {
            Console.Error.WriteLine("l2lab bench-dns: this l2bal has no --affinity; udp/53 would hash on the source address alone");
            return 2;
        }
        var dnsperf = LabBinaries.Require("dnsperf", "dnsperf");
        var dnsdist = LabBinaries.Require("dnsdist", "dnsdist");
        Console.WriteLine($"l2lab bench-dns: {rate} queries/s for {seconds} s per subject (dnsperf -c 100), {Environment.ProcessorCount} cores");
        await using var dns = await DnsClusterLab.CreateAsync().ConfigureAwait(false);
        var lab = dns.Lab;
        var relay = lab.Network.AddHost("dd");
        lab.Network.ConnectToSwitch(lab.Switch, relay, "eth0");
        relay.AddAddress("eth0", $"{DnsdistAddress}/24");
        relay.AddRoute("default via 198.18.0.254");
        var dir = lab.Network.CreateTempDirectory("bench-dns");
        var queries = Path.Combine(dir, "queries.txt");
        await File.WriteAllTextAsync(queries, $"{DnsServers.WhoName} TXT\n").ConfigureAwait(false);

        var rows = new List<string>();
        var alone = await SteadyAsync(lab, dnsperf, queries, ClusterLab.NodeAddress(1), rate, seconds).ConfigureAwait(false);
        rows.Add(Row("one unbound alone (node 1)", alone, alone));
        var cluster = await SteadyAsync(lab, dnsperf, queries, ClusterLab.VipAddress, rate, seconds).ConfigureAwait(false);
        rows.Add(Row("L2 cluster, 3 nodes, udp/53=none", cluster, alone));
        using (var relayProcess = await StartDnsdistAsync(relay, dnsdist, dir, fastest: false, lab).ConfigureAwait(false))
        {
            var relayed = await SteadyAsync(lab, dnsperf, queries, DnsdistAddress, rate, seconds).ConfigureAwait(false);
            rows.Add(Row("dnsdist -> 3 unbound", relayed, alone));
        }

        var killRows = new List<string>();
        var firstPort = 2000;
        var wakes = (await dns.StatusAsync(2).ConfigureAwait(false)).Wake.GetValueOrDefault("wakes");
        var killed = await KillRunAsync(dns, new IPEndPoint(ClusterLab.VipAddress, DnsServers.Port), rate, firstPort).ConfigureAwait(false);
        // Read after the restart: the victim's daemon kept running, so its wake counters span the kill.
        var wake = (await dns.StatusAsync(2).ConfigureAwait(false)).Wake;
        killRows.Add(string.Create(CultureInfo.InvariantCulture,
            $"| L2 cluster (probe every 100 ms and woken by the first port-unreachable, refusal: at once) | {killed}; node 2's early probes {wake.GetValueOrDefault("wakes") - wakes}, port-unreachables ignored while failing {wake.GetValueOrDefault("ignoredFailing")} |"));
        foreach (var fastest in new[] { false, true })
        {
            firstPort += 12_000;
            using var relayProcess = await StartDnsdistAsync(relay, dnsdist, dir, fastest, lab).ConfigureAwait(false);
            var lost = await KillRunAsync(dns, new IPEndPoint(DnsdistAddress, DnsServers.Port), rate, firstPort).ConfigureAwait(false);
            killRows.Add(fastest
                ? $"| dnsdist, fastest check (checkInterval=1 s, checkTimeout=100 ms, maxCheckFailures=1) | {lost} |"
                : $"| dnsdist, default check (checkInterval=1 s, checkTimeout=1000 ms, maxCheckFailures=1) | {lost} |");
        }

        Console.WriteLine();
        Console.WriteLine($"| subject ({rate} q/s offered, {seconds} s) | qps | lost | latency median | p99 | machine CPU ms / 1,000 q | minus the server alone |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        rows.ForEach(Console.WriteLine);
        Console.WriteLine();
        Console.WriteLine($"| node 2's unbound SIGKILLed 2 s into 6 s at {Math.Min(rate, 2000)} q/s, a fresh source port per query | lost (when they were sent, after the kill) |");
        Console.WriteLine("|---|---|");
        killRows.ForEach(Console.WriteLine);
        return 0;
    }

    private sealed record Steady(double Qps, long Sent, long Lost, double MedianUs, double P99Us, double CpuMsPer1000);

    private static string Row(string name, Steady s, Steady alone) =>
        string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {s.Qps:0} | {s.Lost} of {s.Sent} | {s.MedianUs:0} µs | {s.P99Us:0} µs | {s.CpuMsPer1000:0.0} | {s.CpuMsPer1000 - alone.CpuMsPer1000:+0.0;-0.0;0.0} |");

    private static async Task<Steady> SteadyAsync(ClusterLab lab, string dnsperf, string queries, IPAddress server, int rate, int seconds)
    {
        var before = ProxyBench.MachineBusySeconds();
        var clock = Stopwatch.StartNew();
        var result = await lab.Client.RunAsync(dnsperf,
            ["-s", server.ToString(), "-d", queries, "-c", "100", "-Q", rate.ToString(CultureInfo.InvariantCulture), "-l", seconds.ToString(CultureInfo.InvariantCulture),
             "-t", "1", "-q", "1000", "-v"], TimeSpan.FromSeconds(seconds + 30)).ConfigureAwait(false);
        var elapsed = clock.Elapsed.TotalSeconds;
        var busy = ProxyBench.MachineBusySeconds() - before;
        result.EnsureSuccess();
        var latencies = new List<double>();
        long sent = 0, lost = 0, completed = 0;
        foreach (var line in result.StdOut.Split('\n'))
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
        }
        latencies.Sort();
        double Quantile(double q) => latencies.Count == 0 ? double.NaN : latencies[(int)Math.Min(latencies.Count - 1, Math.Floor(q * latencies.Count))];
        Console.WriteLine($"  {server}: sent {sent}, completed {completed}, lost {lost}, {latencies.Count} latencies, machine busy {busy:0.00} s over {elapsed:0.0} s");
        return new Steady(completed / (double)seconds, sent, lost, Quantile(0.5), Quantile(0.99), completed == 0 ? double.NaN : busy * 1000 / completed * 1000);
    }

    private static long Number(string line) =>
        long.Parse(line.Split(':')[1].Trim().Split(' ')[0], CultureInfo.InvariantCulture);

    /// <summary>dnsdist on the relay host, relaying to the three unbound servers at their own addresses; ready when it answers.</summary>
    private static async Task<LabProcess> StartDnsdistAsync(LabHost relay, string dnsdist, string dir, bool fastest, ClusterLab lab)
    {
        var check = fastest ? ", checkInterval=1, checkTimeout=100, maxCheckFailures=1" : string.Empty;
        var backends = string.Concat(Enumerable.Range(1, lab.Nodes.Count).Select(k =>
            $"newServer({{address=\"{ClusterLab.NodeAddress(k)}:53\", checkName=\"{DnsServers.ProbeName}\"{check}}})\n"));
        var config = Path.Combine(dir, fastest ? "dnsdist-fastest.conf" : "dnsdist-default.conf");
        await File.WriteAllTextAsync(config, $"setSecurityPollSuffix(\"\")\nsetACL({{\"198.18.0.0/15\"}})\nsetLocal(\"{DnsdistAddress}:53\")\n{backends}").ConfigureAwait(false);
        var process = relay.Start(dnsdist, "--supervised", "--disable-syslog", "-C", config);
        try
        {
            await DnsServers.WaitReadyAsync(lab.Client, new IPEndPoint(DnsdistAddress, DnsServers.Port), TimeSpan.FromSeconds(20)).ConfigureAwait(false);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\n{process.Describe()}", e);
        }
        // Every backend up (its first check passed) before the run.
        await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        return process;
    }

    /// <summary>6 s of queries, node 2's unbound SIGKILLed at 2 s, restarted after; returns "lost N (sent from A to B ms after the kill)".</summary>
    private static async Task<string> KillRunAsync(DnsClusterLab dns, IPEndPoint server, int rate, int firstPort)
    {
        var killRate = Math.Min(rate, 2000);
        var clock = Stopwatch.StartNew();
        var load = DnsQueryGenerator.RunAsync(dns.Lab.Client, new DnsLoadOptions
        {
            Source = dns.Lab.ClientAddresses[0],
            Server = server,
            Ports = killRate * 6,
            Queries = killRate * 6,
            Rate = killRate,
            FirstPort = firstPort,
        }, clock);
        await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        var killedAt = clock.Elapsed;
        ClusterLab.Signal(dns.DnsServer(2)!, LabSignals.Kill);
        var result = await load.ConfigureAwait(false);
        dns.StartDnsServer(2);
        await dns.WaitAllActiveAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        var lost = result.Queries.Where(q => q.Answers == 0).ToArray();
        Console.WriteLine($"  kill via {server}: {result}");
        return lost.Length == 0
            ? $"0 of {result.Sent}"
            : string.Create(CultureInfo.InvariantCulture,
                $"{lost.Length} of {result.Sent} (sent {(lost.Min(q => q.SentAt) - killedAt).TotalMilliseconds:0} to {(lost.Max(q => q.SentAt) - killedAt).TotalMilliseconds:0} ms after the kill; duplicated {result.Duplicated})");
    }
}
