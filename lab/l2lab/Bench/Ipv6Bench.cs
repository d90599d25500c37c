using System.Globalization;
using System.Text.Json;
using L2Balance.Lab.Cluster;

namespace L2Balance.Lab.Cli.Bench;

/// <summary>
/// <c>l2lab bench-ipv6</c> (issue 17, docs/design.md#the-ip6-filter): l2bal's idle CPU per node on three
/// nodes at the default timing with the IPv4 VIP only, with both VIPs (the ip6 table, the ND socket,
/// a second lease datagram per renewal), with the IPv6 VIP alone (no ARP socket, no ip table), and with the IPv4 VIP only again, in one dual-stack lab and one
/// run. Prints one line per phase; not a test.
/// </summary>
internal static class Ipv6Bench
{
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(20);

    public static async Task<int> RunAsync()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            Console.WriteLine("idle CPU: skipped (needs root for the namespaces)");
            return 0;
        }

        await using var lab = await ClusterLab.CreateAsync(3, 10, dualStack: true).ConfigureAwait(false);
        int[] nodes = [1, 2, 3];
        foreach (var (name, v4, v6) in new[] { ("IPv4 VIP only", true, false), ("both VIPs", true, true), ("IPv6 VIP only", false, true), ("IPv4 VIP only again", true, false) })
        {
            lab.ServeVip4 = v4;
            lab.ServeVip6 = v6;
            foreach (var k in nodes)
            {
                await ClusterOps.StartBalancerAsync(lab, k, CancellationToken.None, "--health", "none").ConfigureAwait(false);
            }
            await ClusterOps.WaitForSharesAsync(lab, nodes, TimeSpan.FromSeconds(30), _ => { }, CancellationToken.None).ConfigureAwait(false);
            await Task.Delay(Settle).ConfigureAwait(false);
            var cpu = await BenchFailoverLoad.CpuAsync([.. nodes.Select(k => lab.Balancer(k)!.Id)], Window, CancellationToken.None).ConfigureAwait(false);
            var tables = await lab.RunOnNode(1, LabBinaries.Require("nft", "nftables"), ["list", "tables"]).ConfigureAwait(false);
            var renewals = await RenewalsAsync(lab).ConfigureAwait(false);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"idle CPU, {name} (node 1 tables: {string.Join(", ", tables.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries))}; node 1 lease renewals {renewals}), % of one core per node over {Window.TotalSeconds:0} s: {string.Join(" ", cpu.Select(c => $"{c:0.00}"))}"));
            await ClusterOps.StopBalancersAsync(lab, nodes).ConfigureAwait(false);
        }
        Console.WriteLine($"load average at the end: {File.ReadAllText("/proc/loadavg").Trim()} ({Environment.ProcessorCount} cores)");
        return 0;
    }

    /// <summary>Node 1's <c>kernel.leaseRenewals</c> (both families' tables summed) and, with both VIPs, the ip6 table's share.</summary>
    private static async Task<string> RenewalsAsync(ClusterLab lab)
    {
        var status = await lab.RunOnNode(1, ClusterBinaries.L2Bal, ["status", "--json"]).ConfigureAwait(false);
        status.EnsureSuccess();
        using var doc = JsonDocument.Parse(status.StdOut);
        var kernel = doc.RootElement.GetProperty("kernel");
        var total = kernel.GetProperty("leaseRenewals").GetInt64();
        return kernel.TryGetProperty("ipv6", out var v6) && v6.ValueKind == JsonValueKind.Object
            ? string.Create(CultureInfo.InvariantCulture, $"{total} (ip6 {v6.GetProperty("leaseRenewals").GetInt64()})")
            : total.ToString(CultureInfo.InvariantCulture);
    }
}
