using System.Net;
using System.Text.Json;
using L2Balance.Lab.Cluster;
using L2Balance.Lab.Tests.Balancer.Cluster;
using L2Balance.Tests.Common;
using Xunit;
using Xunit.Abstractions;
using static L2Balance.Lab.Tests.Proxy.Gssapi.GssapiLabFixture;

namespace L2Balance.Lab.Tests.Proxy.Gssapi;

/// <summary>
/// The three-node cluster with Kerberos (issue 20): a KDC namespace beside the client (198.18.3.0/24), the
/// cluster's one service principal socks/vip.l2lab.test (the name resolves to the VIP in the client), its keytab copied to every node, and on every node
/// l2proxy with the sockd.conf of Dante's redundancy notes (<c>socksmethod: gssapi</c> alone,
/// <c>gssapi.servicename</c> and <c>gssapi.keytab</c> in the client rule), each with its own replay cache
/// directory as separate hosts have. l2bal's probe is the standard socks5:// one against that proxy.
/// </summary>
public sealed class GssapiClusterFixture : BalancerClusterFixtureBase
{
    public const int ProxyMetricsPort = 9180;

    /// <summary>The cluster's name: the service principal's host part, and what clients connect to.</summary>
    public const string ClusterName = "vip.l2lab.test";
    private const string Password = "alice-cluster-pw";
    private readonly string[] _configs = new string[NodeCount + 1];
    private readonly string[][] _environments = new string[NodeCount + 1][];

    public GssapiClusterFixture()
    {
        // As the balancer-cluster fixture: correctness on a loaded machine, not failover timing.
        BalancerArgs = ["--advert-interval", "50ms", "--dead-after", "6"];
    }

    public KerberosRealm Realm { get; private set; } = null!;

    /// <summary>Alice's credential cache in the client namespace: every session of the tests uses these tickets.</summary>
    public string AliceCache { get; private set; } = null!;

    protected override async Task PrepareAsync()
    {
        ProxyUnderTest.SkipUnlessL2Proxy("GSS-API (RFC 1961) through the cluster");
        LabBinaries.Require("python3", "python3-gssapi");
        // The cluster's name resolves to the VIP for the clients (their own /etc/hosts), as DNS would give it.
        Lab.Client.SetHosts([(ClusterName, ClusterLab.VipAddress)]);
        var kdc = Lab.Network.AddHost("kdc");
        Lab.Network.Link(Lab.Client, "eth1", kdc, "eth0");
        Lab.Client.AddAddress("eth1", "198.18.3.1/24");
        kdc.AddAddress("eth0", "198.18.3.2/24");
        Realm = await KerberosRealm.CreateAsync(Lab.Network, kdc, KdcAddress, "socks", ClusterName, [("alice", Password)], Deadline).WithTimeout(Deadline);
        AliceCache = await Realm.KinitAsync(Lab.Client, "alice", Password, Deadline).WithTimeout(Deadline);
        for (var k = 1; k <= NodeCount; k++)
        {
            var dir = Lab.Network.CreateTempDirectory($"gssapi-n{k}");
            var keytab = Path.Combine(dir, "socks.keytab");
            File.Copy(Realm.Keytab, keytab);
            if (!OperatingSystem.IsWindows())
            {
                // l2proxy refuses a keytab readable by others.
                File.SetUnixFileMode(keytab, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            var (low, high) = ClusterPortSlice.For(k, NodeCount);
            _configs[k] = Path.Combine(dir, "sockd.conf");
            await File.WriteAllTextAsync(_configs[k], $$"""
                internal: {{ClusterLab.VipAddress}} port = {{ClusterLab.ProxyPort}}
                external: {{ClusterLab.NodeAddress(k)}}
                udp.portrange: {{low}}-{{high}}
                socksmethod: gssapi
                metrics: 127.0.0.1 port = {{ProxyMetricsPort}}
                client pass {
                    from: {{ClusterLab.ClientSubnet}} to: 0/0
                    gssapi.servicename: {{Realm.ServicePrincipal}}
                    gssapi.keytab: {{keytab}}
                    gssapi.enctype: clear integrity confidentiality
                }
                socks pass { from: 0/0 to: 0/0 user: alice@{{Realm.Realm}} }

                """);
            _environments[k] = [$"KRB5_CONFIG={Realm.ConfigPath}", $"KRB5RCACHEDIR={dir}"];
        }
    }

    protected override LabProcess StartNodeProxy(int k) => Lab.StartProxyWithConfig(k, _configs[k], _environments[k]);

    /// <summary>The RFC 1961 client from <paramref name="source"/> to the cluster's name (the VIP) with Alice's tickets.</summary>
    public Task<JsonElement> ClientAsync(IPAddress source, params string[] args) =>
        RunClientAsync(Lab.Client, Realm, AliceCache, $"{ClusterName}:{ClusterLab.ProxyPort}", Describe, ["--source", source.ToString(), .. args]);

    /// <summary>Node k's proxy metrics.</summary>
    public Task<Dictionary<string, double>> ScrapeAsync(int k) => GssapiLabFixture.ScrapeAsync(Lab.Nodes[k - 1], ProxyMetricsPort, Describe);

    /// <summary>The service-ticket lines of Alice's cache (klist): the same lines before and after show the same ticket.</summary>
    public async Task<string[]> ServiceTicketsAsync()
    {
        var result = await Lab.Client.RunAsync("/usr/bin/env", [.. Realm.Environment, "klist", "-c", $"FILE:{AliceCache}"], TimeSpan.FromSeconds(10)).WithTimeout(Deadline);
        Assert.True(result.Succeeded, $"klist: {result}");
        return [.. result.StdOut.Split('\n').Where(l => l.Contains($"{Realm.ServicePrincipal}@", StringComparison.Ordinal))];
    }
}

[CollectionDefinition(Name)]
public sealed class GssapiClusterGroup : ICollectionFixture<GssapiClusterFixture>
{
    public const string Name = "gssapi-cluster";
}

/// <summary>
/// GSS-API through the cluster (issue 20): clients whose addresses fall on each node authenticate against the one
/// shared principal on the node that owns them and relay data (CONNECT, and UDP ASSOCIATE at the same levels); every node stays healthy with a GSSAPI-only proxy;
/// after a node is killed its clients authenticate on the covering node with the same tickets.
/// </summary>
[Collection(GssapiClusterGroup.Name)]
public sealed class GssapiClusterTests(GssapiClusterFixture fixture, ITestOutputHelper output)
{
    private const int NodeCount = BalancerClusterFixtureBase.NodeCount;

    /// <summary>The level each node's client asks for (node k: <c>Levels[k - 1]</c>), so every level crosses the cluster.</summary>
    private static readonly string[] Levels = ["clear", "integrity", "confidentiality"];

    private static string Echo => $"{ClusterLab.TargetAddress}:{TargetServers.TcpEchoPort}";

    private static string UdpEcho => $"{ClusterLab.TargetAddress}:{TargetServers.UdpEchoPort}";

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task GssapiSessions_OnEachNodeThenAfterANodeIsKilled_AuthenticateOnTheOwner()
    {
        var lab = fixture.Lab;
        // One client address per node, by node 1's mirror of the owner tables.
        var clients = new Dictionary<int, IPAddress>();
        foreach (var address in lab.ClientAddresses)
        {
            clients.TryAdd(await fixture.OwnerAsync(1, address), address);
            if (clients.Count == NodeCount)
            {
                break;
            }
        }

        Assert.Equal([1, 2, 3], clients.Keys.Order());
        try
        {
            var before = await ScrapeAllAsync();
            for (var k = 1; k <= NodeCount; k++)
            {
                AssertRelayed(await fixture.ClientAsync(clients[k], "--service", Service, "--level", Levels[k - 1], "--connect", Echo, "--payload", "100000"), k - 1);
            }

            var after = await ScrapeAllAsync();
            for (var node = 1; node <= NodeCount; node++)
            {
                for (var k = 1; k <= NodeCount; k++)
                {
                    var delta = Authenticated(after[node], Levels[k - 1]) - Authenticated(before[node], Levels[k - 1]);
                    Assert.True(delta == (node == k ? 1 : 0), $"node {node}: {delta} authenticated at {Levels[k - 1]} for client {clients[k]} of node {k}\n{fixture.Describe()}");
                }
            }

            // socksmethod gssapi alone: l2bal's socks5:// probe still gets a method, every node stays healthy.
            for (var k = 1; k <= NodeCount; k++)
            {
                var status = await fixture.StatusAsync(k);
                Assert.True(status.State == "active" && status.Healthy, $"node {k}: {status.Json}");
            }

            // UDP ASSOCIATE at each node's level: the wrapped datagrams reach the VIP's relay port on the owner, and back.
            for (var k = 1; k <= NodeCount; k++)
            {
                var udp = await fixture.ClientAsync(clients[k], "--service", Service, "--level", Levels[k - 1], "--udp", "10", "--udp-target", UdpEcho);
                Assert.True(NumberOf(udp, "level") == k - 1 && NumberOf(udp, "reply") == 0 && NumberOf(udp, "udp_echoed") == 10 && NumberOf(udp, "udp_extra") == 0,
                    $"node {k}: {udp}\n{fixture.Describe()}");
            }

            var tickets = await fixture.ServiceTicketsAsync();
            Assert.Single(tickets);

            // Node 2 dies: SIGKILL of its l2bal and its l2proxy, by their PIDs.
            ClusterLab.Signal(lab.Balancer(2)!, LabSignals.Kill);
            ClusterLab.Signal(lab.Proxy(2)!, LabSignals.Kill);
            await fixture.WaitForStatusAsync([1, 3], s => s.Values.All(v => v.Healthy && v.OwnedBy(2) == 0 && v.Owners.GetValueOrDefault("none") == 0),
                "nodes 1 and 3 cover node 2's buckets");
            var cover = await fixture.OwnerAsync(1, clients[2]);
            Assert.True(cover is 1 or 3, $"client {clients[2]} of node 2 is now on node {cover}");
            var mark = await fixture.ScrapeAsync(cover);
            AssertRelayed(await fixture.ClientAsync(clients[2], "--service", Service, "--level", "integrity", "--connect", Echo, "--payload", "100000"), 1);
            Assert.Equal(1, Authenticated(await fixture.ScrapeAsync(cover), "integrity") - Authenticated(mark, "integrity"));
            Assert.Equal(tickets, await fixture.ServiceTicketsAsync());
            output.WriteLine($"clients {string.Join(", ", clients.Select(c => $"{c.Value} on node {c.Key}"))}; node 2's covered by node {cover}; ticket {tickets[0].Trim()}");
        }
        finally
        {
            await fixture.RestoreAsync();
        }
    }

    private async Task<Dictionary<int, Dictionary<string, double>>> ScrapeAllAsync()
    {
        var all = new Dictionary<int, Dictionary<string, double>>();
        for (var k = 1; k <= NodeCount; k++)
        {
            all[k] = await fixture.ScrapeAsync(k);
        }

        return all;
    }

    private void AssertRelayed(JsonElement result, int level) =>
        Assert.True(NumberOf(result, "method") == 1 && TextOf(result, "auth") == "ok" && NumberOf(result, "level") == level && NumberOf(result, "reply") == 0 && TextOf(result, "echo") == "ok",
            $"{result}\n{fixture.Describe()}");
}
