using System.Diagnostics;
using System.Globalization;
using L2Balance.Balancer.Cluster;
using L2Balance.Lab.Cluster;

namespace L2Balance.Lab.Cli.Bench;

/// <summary>
/// <c>l2lab bench-weights</c> (issue 17, docs/design.md#weights): what an ownership change costs with
/// weights (Ownership.Compute time and CPU, the interval elements of each node's set, which is what
/// each nft transaction carries, and the buckets moved by a weight change against the least that
/// change needs, with the pool bound on the rest), then as root l2bal's idle CPU per node on three nodes at the default timing,
/// equal weights and 100/200/100 in the same run. Prints a table; not a test.
/// </summary>
internal static class WeightsBench
{
    private const int Buckets = 4096;
    private const int Rounds = 300;
    private static readonly TimeSpan IdleSettle = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan IdleWindow = TimeSpan.FromSeconds(20);

    public static async Task<int> RunAsync()
    {
        var random = new Random(1);
        (string Name, ushort[] Weights)[] cases =
        [
            ("3 nodes, equal", [100, 100, 100]),
            ("3 nodes, 100/200/100", [100, 200, 100]),
            ("16 nodes, equal", [.. Enumerable.Repeat((ushort)100, 16)]),
            ("16 nodes, 1:10 (seed 1)", [.. Enumerable.Range(0, 16).Select(_ => (ushort)random.Next(50, 501))]),
        ];
        Console.WriteLine("case | view | Compute µs (median of 300) | CPU µs per Compute | interval elements per node (min-max, total) | largest share error (points)");
        foreach (var (name, weights) in cases)
        {
            var vector = new WeightVector(weights);
            int n = weights.Length;
            ulong all = (1UL << n) - 1;
            foreach (var (view, mask) in new[] { ("all up", all), ("node 2 dead", all & ~2UL), ("nodes 2, 5 dead", n > 4 ? all & ~2UL & ~16UL : 0) })
            {
                if (mask == 0)
                {
                    continue;
                }
                var (median, cpu) = Time(() => Ownership.Compute(MembershipView.FromActiveMask(n, Buckets, mask, vector)));
                var table = Ownership.Compute(MembershipView.FromActiveMask(n, Buckets, mask, vector));
                var alive = Enumerable.Range(1, n).Where(id => (mask & (1UL << (id - 1))) != 0).ToArray();
                var elements = alive.Select(id => table.BucketsOf(id).Count).ToArray();
                long total = alive.Sum(id => (long)weights[id - 1]);
                double error = alive.Max(id => Math.Abs(((double)table.CountOf(id) / Buckets) - ((double)weights[id - 1] / total))) * 100;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{name} | {view} | {median:0.0} | {cpu:0.0} | {elements.Min()}-{elements.Max()}, {elements.Sum()} | {error:0.00}"));
            }
        }

        Console.WriteLine();
        Console.WriteLine("weight change (all up) | buckets moved | least the change needs (|Δ| of the changed node) | moved between two unchanged nodes | pool before + after (the bound)");
        foreach (var (name, before, after) in new (string, ushort[], ushort[])[]
        {
            ("3 nodes: node 2 100 → 200", [100, 100, 100], [100, 200, 100]),
            ("3 nodes: node 1 100 → 200", [100, 100, 100], [200, 100, 100]),
            ("8 nodes: node 4 100 → 200", [.. Enumerable.Repeat((ushort)100, 8)], [100, 100, 100, 200, 100, 100, 100, 100]),
            ("16 nodes: node 1 100 → 300", [.. Enumerable.Repeat((ushort)100, 16)], [300, .. Enumerable.Repeat((ushort)100, 15)]),
            ("3 nodes: node 1 200 → 400 (100/100 others)", [200, 100, 100], [400, 100, 100]),
            ("3 nodes: node 1 50 → 25 (100/100 others)", [50, 100, 100], [25, 100, 100]),
            ("3 nodes: node 1 100 → 50 (100/200 others)", [100, 100, 200], [50, 100, 200]),
        })
        {
            int changed = Enumerable.Range(1, before.Length).First(id => before[id - 1] != after[id - 1]);
            var (moved, least, excess, pools) = Change(before, after, changed);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name} | {moved} | {least} | {excess} | {pools}"));
        }

        // Random views: 3-16 nodes, weights within 1:10, one node's weight doubled or halved.
        long sumMoved = 0, sumLeast = 0, sumExcess = 0, exact = 0;
        double worst = 0;
        const int Changes = 300;
        for (int i = 0; i < Changes; i++)
        {
            int n = random.Next(3, 17), low = random.Next(1, 101), changed = random.Next(1, n + 1);
            var before = Enumerable.Range(0, n).Select(_ => (ushort)random.Next(low, (10 * low) + 1)).ToArray();
            var after = before.ToArray();
            after[changed - 1] = (ushort)Math.Clamp(random.Next(2) == 0 ? after[changed - 1] * 2 : after[changed - 1] / 2, Ownership.MinWeight, Ownership.MaxWeight);
            var (moved, least, excess, _) = Change(before, after, changed);
            sumMoved += moved;
            sumLeast += least;
            sumExcess += excess;
            exact += excess == 0 ? 1 : 0;
            worst = Math.Max(worst, (double)excess / Math.Max(1, least));
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{Changes} random changes (3-16 nodes, 1:10, one weight ×2 or ÷2) | {sumMoved} | {sumLeast} | {sumExcess} ({(double)sumExcess / sumLeast:0.00} of least; {exact} changes exact; worst change {worst:0.00} of its least) | -"));

        if (!Environment.IsPrivilegedProcess)
        {
            Console.WriteLine("\nidle CPU: skipped (needs root for the namespaces)");
            return 0;
        }
        Console.WriteLine();
        await using var lab = await ClusterLab.CreateAsync(3, 10).ConfigureAwait(false);
        int[] nodes = [1, 2, 3];
        foreach (var (name, weights) in new (string, int[])[] { ("equal", [100, 100, 100]), ("100/200/100", [100, 200, 100]), ("equal again", [100, 100, 100]) })
        {
            foreach (var k in nodes)
            {
                await ClusterOps.StartBalancerAsync(lab, k, CancellationToken.None, "--health", "none", "--weight", $"{weights[k - 1]}").ConfigureAwait(false);
            }
            var table = Ownership.Compute(MembershipView.AllActive(3, Buckets, new WeightVector([.. weights.Select(w => (ushort)w)])));
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (true)
            {
                var held = await Task.WhenAll(nodes.Select(k => ClusterOps.StatusAsync(lab, k, CancellationToken.None))).ConfigureAwait(false);
                if (held.All(s => s is not null && s.Held == table.CountOf(s.NodeId)))
                {
                    break;
                }
                if (DateTime.UtcNow > deadline)
                {
                    throw new TimeoutException($"{name}: shares not reached in 30 s\n{lab.Describe()}");
                }
                await Task.Delay(200).ConfigureAwait(false);
            }
            await Task.Delay(IdleSettle).ConfigureAwait(false);
            var cpu = await BenchFailoverLoad.CpuAsync([.. nodes.Select(k => lab.Balancer(k)!.Id)], IdleWindow, CancellationToken.None).ConfigureAwait(false);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"idle CPU, {name} (held {string.Join("/", nodes.Select(table.CountOf))}), % of one core per node over {IdleWindow.TotalSeconds:0} s: {string.Join(" ", cpu.Select(c => $"{c:0.00}"))}"));
            await ClusterOps.StopBalancersAsync(lab, nodes).ConfigureAwait(false);
        }
        Console.WriteLine($"load average at the end: {File.ReadAllText("/proc/loadavg").Trim()} ({Environment.ProcessorCount} cores)");
        return 0;
    }

    /// <summary>All up, weights <paramref name="before"/> → <paramref name="after"/>: buckets moved, the changed node's |Δ|, those moved between two other nodes, and both tables' pools.</summary>
    private static (int Moved, int Least, int Excess, int Pools) Change(ushort[] before, ushort[] after, int changed)
    {
        int n = before.Length;
        var t0 = Ownership.Compute(MembershipView.AllActive(n, Buckets, new WeightVector(before)));
        var t1 = Ownership.Compute(MembershipView.AllActive(n, Buckets, new WeightVector(after)));
        var moves = OwnershipTable.Diff(t0, t1);
        int Pool(OwnershipTable t) => Enumerable.Range(0, Buckets).Count(b => t.Owner(b) != Ownership.DefaultOwner(b, n, Buckets));
        return (moves.Sum(m => m.Buckets.Count), Math.Abs(t1.CountOf(changed) - t0.CountOf(changed)),
            moves.Where(m => m.From != changed && m.To != changed).Sum(m => m.Buckets.Count), Pool(t0) + Pool(t1));
    }

    /// <summary>Median wall time and mean CPU time of one call, in µs, after a warm-up of as many calls.</summary>
    private static (double Median, double Cpu) Time(Action compute)
    {
        for (int i = 0; i < Rounds; i++)
        {
            compute();
        }
        var samples = new double[Rounds];
        var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        for (int i = 0; i < Rounds; i++)
        {
            long start = Stopwatch.GetTimestamp();
            compute();
            samples[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        }
        process.Refresh();
        var cpu = (process.TotalProcessorTime - cpuBefore).TotalMicroseconds / Rounds;
        Array.Sort(samples);
        return (samples[Rounds / 2], cpu);
    }
}
