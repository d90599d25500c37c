using System.Net;
using System.Text.Json;

namespace L2Balance.Lab.Cluster;

/// <summary>
/// DNS behind the VIP (issue 16): the cluster lab with unbound on every node at VIP:53 (UDP and
/// TCP) and VIP:5353 (UDP), and l2bal balancing <c>udp/53</c>, <c>tcp/53</c> and <c>udp/5353</c>
/// with a <c>dns://VIP:53/probe.lab.example.</c> health probe. Port 53 has affinity <c>none</c>
/// when this l2bal has <c>--affinity</c> (source address and port: each query of one client may
/// land on another node); 5353 keeps the default <c>single</c> (one client, one node).
/// </summary>
public sealed class DnsClusterLab : IAsyncDisposable
{
    public const int AffinityNonePort = DnsServers.Port;

    public const int AffinitySinglePort = 5353;

    /// <summary>
    /// Adverts every 50 ms, dead after 6: on the shared 2-core machine the default 120 ms dead time
    /// gives false deaths under load (BalancerClusterFixture); the DNS cover comes from health, not death.
    /// </summary>
    public static readonly string[] TimingArgs = ["--advert-interval", "50ms", "--dead-after", "6"];

    private static readonly Lazy<bool> AffinityOption = new(() =>
        CommandRunner.Run(ClusterBinaries.L2Bal, ["run", "--help"]).StdOut.Contains("--affinity", StringComparison.Ordinal));

    private readonly LabProcess?[] _servers;

    private DnsClusterLab(ClusterLab lab)
    {
        Lab = lab;
        _servers = new LabProcess?[lab.Nodes.Count];
    }

    /// <summary>Whether the l2bal under test has <c>--affinity PROTO/PORT=MODE</c> (issue 16 part 1).</summary>
    public static bool HasAffinityOption => AffinityOption.Value;

    public ClusterLab Lab { get; }

    /// <summary>Whether port 53 runs at affinity <c>none</c> (else <c>single</c>, as every port without the option).</summary>
    public bool AffinityNone { get; } = HasAffinityOption;

    public IPEndPoint Dns => new(Lab.Vip, AffinityNonePort);

    public IPEndPoint DnsSingle => new(Lab.Vip, AffinitySinglePort);

    /// <summary>The health probe every node runs.</summary>
    public static string Probe => $"dns://{ClusterLab.VipAddress}:{DnsServers.Port}/{DnsServers.ProbeName}";

    /// <summary>The unbound started last on node k (1-based), or null.</summary>
    public LabProcess? DnsServer(int nodeId) => _servers[nodeId - 1];

    /// <summary>Builds the lab, starts unbound and l2bal on every node and waits until every node is active and healthy.</summary>
    public static async Task<DnsClusterLab> CreateAsync(int nodes = 3, int clientAddresses = 2, int serverThreads = 1, TimeSpan? timeout = null)
    {
        var lab = await ClusterLab.CreateAsync(nodes, clientAddresses, startTargetServers: false).ConfigureAwait(false);
        var dns = new DnsClusterLab(lab);
        try
        {
            for (var k = 1; k <= nodes; k++)
            {
                dns.StartDnsServer(k, serverThreads);
                dns.StartBalancer(k);
            }
            await dns.WaitAllActiveAsync(timeout ?? TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            return dns;
        }
        catch
        {
            await lab.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Starts unbound on node k at VIP:53, VIP:5353 and the node's own address port 53 (for a relay
    /// such as dnsdist, or a client asking the server alone), answering who.lab.example. with "nK".
    /// </summary>
    public LabProcess StartDnsServer(int nodeId, int threads = 1)
    {
        var server = DnsServers.StartUnbound(Lab.Nodes[nodeId - 1], ClusterLab.VipAddress, $"n{nodeId}", threads,
            [new IPEndPoint(ClusterLab.VipAddress, AffinitySinglePort), new IPEndPoint(ClusterLab.NodeAddress(nodeId), DnsServers.Port)]);
        _servers[nodeId - 1] = server;
        return server;
    }

    /// <summary>Starts l2bal on node k with the DNS services, the DNS probe and <see cref="TimingArgs"/>.</summary>
    public LabProcess StartBalancer(int nodeId, params string[] extra)
    {
        string[] args =
        [
            "--service", $"udp/{AffinityNonePort}", "--service", $"tcp/{AffinityNonePort}", "--service", $"udp/{AffinitySinglePort}",
            "--health", Probe, .. TimingArgs, .. AffinityNone ? ["--affinity", $"udp/{AffinityNonePort}=none"] : Array.Empty<string>(), .. extra,
        ];
        return Lab.StartBalancer(nodeId, args);
    }

    /// <summary>Node k's <c>l2bal status --json</c>.</summary>
    public async Task<BalancerStatus> StatusAsync(int nodeId)
    {
        var result = await Lab.RunOnNode(nodeId, ClusterBinaries.L2Bal, ["status", "--json"]).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"l2bal status on node {nodeId}: {result}");
        }
        return BalancerStatus.Parse(result.StdOut);
    }

    /// <summary>Waits until every node's status satisfies <paramref name="condition"/>; returns them (1-based keys).</summary>
    public Task<IReadOnlyDictionary<int, BalancerStatus>> WaitForStatusAsync(Func<IReadOnlyDictionary<int, BalancerStatus>, bool> condition, string what, TimeSpan timeout) =>
        BalancerStatus.WaitForAsync(Enumerable.Range(1, Lab.Nodes.Count), StatusAsync, condition, what, timeout, TimeSpan.FromMilliseconds(100), Lab.Describe);

    /// <summary>Every node active, healthy, holding buckets, nothing unowned, every peer active.</summary>
    public Task<IReadOnlyDictionary<int, BalancerStatus>> WaitAllActiveAsync(TimeSpan timeout) =>
        WaitForStatusAsync(s => s.Values.All(n => n.State == "active" && n.Healthy && n.Held > 0 && n.Owners.GetValueOrDefault("none") == 0
            && n.PeerStates.Count == Lab.Nodes.Count - 1 && n.PeerStates.Values.All(p => p == "active")), "every node active and healthy", timeout);

    public ValueTask DisposeAsync() => Lab.DisposeAsync();
}
