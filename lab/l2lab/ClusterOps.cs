using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using L2Balance.Balancer.Cluster;
using L2Balance.Lab.Cluster;

namespace L2Balance.Lab.Cli;

/// <summary>
/// Helpers over a <see cref="ClusterLab"/> running l2bal: the expected ownership from l2bal's own
/// hash mirror (<see cref="BucketHash"/>, <see cref="Ownership"/>), status polling with a deadline,
/// and <c>l2bal owner</c> look-ups.
/// </summary>
internal static partial class ClusterOps
{
    /// <summary>l2bal's default bucket count.</summary>
    public const int Buckets = 4096;

    /// <summary>The health check every node's l2bal runs: a real SOCKS5 handshake to the local proxy.</summary>
    public static readonly string HealthUrl = $"socks5://{ClusterLab.VipAddress}:{ClusterLab.ProxyPort}";

    /// <summary>l2bal's default seed: the cluster id, which defaults to the VIP as a big-endian number.</summary>
    public static uint DefaultSeed
    {
        get
        {
            Span<byte> bytes = stackalloc byte[4];
            ClusterLab.VipAddress.TryWriteBytes(bytes, out _);
            return System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes);
        }
    }

    /// <summary>The ownership table l2bal computes when exactly <paramref name="alive"/> are active.</summary>
    public static OwnershipTable Table(int nodeCount, IEnumerable<int> alive)
    {
        var set = alive.ToHashSet();
        var status = Enumerable.Range(1, nodeCount).Select(k => set.Contains(k) ? NodeStatus.Active : NodeStatus.Dead).ToArray();
        return Ownership.Compute(new MembershipView(Buckets, status));
    }

    /// <summary>The node that owns <paramref name="address"/>'s bucket under <paramref name="table"/> (a port without an affinity rule).</summary>
    public static int OwnerOf(OwnershipTable table, IPAddress address) => OwnerOf(table, address, 0, AffinityMode.Single);

    /// <summary>The node that owns the bucket of a flow from <paramref name="address"/>:<paramref name="sourcePort"/> to a port of affinity <paramref name="mode"/>.</summary>
    public static int OwnerOf(OwnershipTable table, IPAddress address, int sourcePort, AffinityMode mode) =>
        table.Owner(BucketHash.Bucket(address, sourcePort, mode, Buckets, DefaultSeed));

    /// <summary>
    /// Starts l2bal with the SOCKS5 health check on node k, waits until it has put the VIP on lo,
    /// then starts l2proxy on the VIP. The proxy cannot bind the VIP before l2bal places it
    /// ("Cannot assign requested address"); until the proxy answers, l2bal advertises the node
    /// unhealthy and claims nothing, so the order is safe.
    /// </summary>
    public static async Task StartNodeAsync(ClusterLab lab, int nodeId, CancellationToken cancellationToken, params string[] balancerArgs)
    {
        await StartBalancerAsync(lab, nodeId, cancellationToken, balancerArgs).ConfigureAwait(false);
        StartProxy(lab, nodeId);
    }

    /// <summary>Starts l2proxy on the VIP of node k (its l2bal has put the VIP on lo already).</summary>
    public static void StartProxy(ClusterLab lab, int nodeId) =>
        // l2bal's probe comes from the VIP itself and needs no --allow: l2proxy lets it negotiate methods (docs/sockd-conf.md#health-probe).
        lab.StartProxy(nodeId, "--negotiate-timeout", "5s");

    /// <summary>Stops l2bal on each of <paramref name="nodes"/> (SIGTERM: it leaves and removes its tables and the VIP) and waits for it to exit.</summary>
    public static async Task StopBalancersAsync(ClusterLab lab, IEnumerable<int> nodes)
    {
        foreach (var k in nodes)
        {
            var balancer = lab.Balancer(k)!;
            balancer.Stop();
            await balancer.WaitForExitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
    }

    /// <summary>Starts l2bal on every one of <paramref name="nodes"/> (proxies already run) and waits until they hold their shares.</summary>
    public static async Task StartBalancersAsync(ClusterLab lab, int[] nodes, string[] balancerArgs, CancellationToken cancellationToken)
    {
        await Task.WhenAll(nodes.Select(k => StartBalancerAsync(lab, k, cancellationToken, balancerArgs))).ConfigureAwait(false);
        await WaitForSharesAsync(lab, nodes, TimeSpan.FromSeconds(30), _ => { }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Starts l2bal alone on node k (its proxy already runs), with the SOCKS5 health probe unless
    /// the arguments name their own (<c>--health none</c>), and waits until it has put the VIP on lo.
    /// </summary>
    public static async Task StartBalancerAsync(ClusterLab lab, int nodeId, CancellationToken cancellationToken, params string[] balancerArgs)
    {
        string[] health = balancerArgs.Contains("--health") ? [] : ["--health", HealthUrl];
        lab.StartBalancer(nodeId, [.. health, .. balancerArgs]);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            // An IPv6 VIP alone (lab.ServeVip4 false) is the one l2bal puts on lo.
            bool v4 = lab.ServeVip4 || !lab.DualStack;
            var addr = await lab.RunOnNode(nodeId, "ip", ["-o", v4 ? "-4" : "-6", "addr", "show", "dev", "lo"], TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
            if (addr.StdOut.Contains($" {(v4 ? ClusterLab.VipAddress : ClusterLab.Vip6Address)}/", StringComparison.Ordinal))
            {
                break;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"l2bal on node {nodeId} did not place the VIP on lo within 20 s\n{lab.Balancer(nodeId)?.Describe()}");
            }

            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Node k's <c>l2bal status --json</c>, or null if its daemon does not answer.</summary>
    public static async Task<BalancerStatus?> StatusAsync(ClusterLab lab, int nodeId, CancellationToken cancellationToken)
    {
        var result = await lab.RunOnNode(nodeId, ClusterBinaries.L2Bal, ["status", "--json"], TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            return null;
        }

        try
        {
            return BalancerStatus.Parse(result.StdOut);
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>
    /// Polls <c>l2bal status --json</c> on every node in <paramref name="alive"/> until each holds
    /// exactly its bucket count under the table for <paramref name="alive"/>, printing each node's
    /// held count about once a second. Returns the final statuses.
    /// </summary>
    /// <exception cref="TimeoutException">Not reached within <paramref name="timeout"/>.</exception>
    public static async Task<IReadOnlyDictionary<int, BalancerStatus>> WaitForSharesAsync(
        ClusterLab lab, IReadOnlyCollection<int> alive, TimeSpan timeout, Action<string> progress, CancellationToken cancellationToken)
    {
        var table = Table(lab.Nodes.Count, alive);
        var deadline = DateTime.UtcNow + timeout;
        var lastPrint = DateTime.MinValue;
        while (true)
        {
            var statuses = await Task.WhenAll(alive.Select(k => StatusAsync(lab, k, cancellationToken))).ConfigureAwait(false);
            var line = string.Join("  ", alive.Zip(statuses, (k, s) => s is null
                ? $"n{k}: no answer"
                : string.Create(CultureInfo.InvariantCulture, $"n{k}: {s.State}, held {s.Held}/{table.CountOf(k)}")));
            if (alive.Zip(statuses).All(p => p.Second is { } s && s.Held == table.CountOf(p.First) && s.State == "active"))
            {
                progress(line);
                return alive.Zip(statuses).ToDictionary(p => p.First, p => p.Second!);
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"nodes did not reach their share within {timeout.TotalSeconds:0} s: {line}\n{lab.Describe()}");
            }

            if (DateTime.UtcNow - lastPrint > TimeSpan.FromSeconds(1))
            {
                progress(line);
                lastPrint = DateTime.UtcNow;
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary><c>l2bal owner ADDR</c> asked on node k: the owner it names, or null (none, or no answer).</summary>
    public static async Task<int?> OwnerAsync(ClusterLab lab, int nodeId, IPAddress address, CancellationToken cancellationToken)
    {
        var result = await lab.RunOnNode(nodeId, ClusterBinaries.L2Bal, ["owner", address.ToString()], TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        var match = OwnerPattern().Match(result.StdOut);
        return result.Succeeded && match.Success ? int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : null;
    }

    /// <summary>Median of a non-empty list.</summary>
    public static double Median(IReadOnlyCollection<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>Where artifacts go: {repo}/artifacts/{kind}/{name}-{UTC timestamp}.json.</summary>
    public static string ArtifactPath(string kind, string name)
    {
        var dir = Path.Combine(LabBinaries.RepoRoot, "artifacts", kind);
        Directory.CreateDirectory(dir);
        return Path.Combine(dir, $"{name}-{DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}.json");
    }

    [GeneratedRegex(@"owner (\d+)")]
    private static partial Regex OwnerPattern();
}
