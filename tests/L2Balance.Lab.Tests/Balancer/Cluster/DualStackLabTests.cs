using System.Buffers.Binary;
using System.Net;
using System.Text.Json;
using L2Balance.Balancer.Cluster;
using L2Balance.Lab.Cluster;
using L2Balance.Tests.Common;
using Xunit;
using Xunit.Abstractions;

namespace L2Balance.Lab.Tests.Balancer.Cluster;

/// <summary>
/// Issue 17's IPv6 VIP on the three-node segment (docs/design.md#the-ip6-filter): every l2bal serves
/// 198.18.0.10 and fdc6:1200:10::a, every proxy listens on both. The IPv6 variants of
/// <see cref="BalancerLabTests"/>' connection, UDP ASSOCIATE and cover tests, and the ownership
/// `l2bal owner` names for IPv6 clients; the failure matrix stays IPv4 (its own collection).
/// </summary>
[Collection(DualStackClusterGroup.Name)]
public sealed class DualStackLabTests(DualStackClusterFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan RunBound = TimeSpan.FromSeconds(60);
    private ClusterLab Lab => fixture.Lab;

    public Task InitializeAsync() => fixture.RestoreAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Owner6_OfEveryIpv6Client_IsTheMirrorsOnEveryNode()
    {
        var buckets = (await fixture.StatusAsync(1)).Buckets;
        // The seed derives from the IPv4 VIP whenever there is one (docs/design.md#the-vip-and-the-cluster-mac).
        var seed = BinaryPrimitives.ReadUInt32BigEndian(ClusterLab.VipAddress.GetAddressBytes());
        var mirror = Lab.ClientAddresses6.ToDictionary(a => a.ToString(), a => Ownership.DefaultOwner(BucketHash.Bucket(a, buckets, seed), 3, buckets));
        for (var k = 1; k <= 3; k++)
        {
            var named = await fixture.OwnersAsync(k, Lab.ClientAddresses6);
            Assert.Equal(mirror.OrderBy(p => p.Key), named.OrderBy(p => p.Key));
        }

        Assert.Equal([1, 2, 3], mirror.Values.Distinct().Order());
        using var status = JsonDocument.Parse((await fixture.StatusAsync(1)).Json);
        Assert.Equal(ClusterLab.Vip6Address.ToString(), status.RootElement.GetProperty("vip6").GetString());
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Connection6_FromAnyIpv6Client_IsServedByItsNamedOwnerOnly()
    {
        var owners = await fixture.OwnersAsync(1, Lab.ClientAddresses6);
        var before = await Ipv6AcceptedNewAsync();

        using var detector = await DuplicateAnswerDetector.StartAsync(Lab, ipv6: true);
        var results = await new TrafficGenerator(Lab.Client, fixture.Traffic(TimeSpan.FromSeconds(3), ipv6: true)).RunAsync().WithTimeout(RunBound);
        var seen = await detector.StopAsync();
        output.WriteLine($"{results.Summary()}\n{seen.Summary()}");
        var why = $"{results.Summary()}\n{seen.Summary()}\n{fixture.Describe()}";

        Assert.True(results.Connects.Count >= 2 * BalancerClusterFixtureBase.ClientCount, why);
        LabAssert.All(results.Connects, c => c.Outcome == TrafficOutcome.Ok && c.Node == owners[c.Source], c => $"{c} (owner {owners[c.Source]})\n{why}");
        seen.AssertSingleAnswers(fixture.Describe);

        // The ip6 tables took them: each node's count of new IPv6 flows grew by at least its own connections.
        var after = await Ipv6AcceptedNewAsync();
        for (var k = 1; k <= 3; k++)
        {
            var served = results.Connects.Count(c => c.Node == k);
            Assert.True(after[k] - before[k] >= served, $"node {k}: kernel.ipv6.acceptedNew {before[k]} → {after[k]}, served {served}\n{why}");
        }

        // The router resolved the IPv6 VIP by neighbour discovery to the cluster MAC, a group MAC in multicast mode.
        var mac = await Lab.RouterVipMacAsync(ClusterLab.Vip6Address).WithTimeout(BalancerClusterFixtureBase.Deadline);
        using var status = JsonDocument.Parse((await fixture.StatusAsync(1)).Json);
        Assert.Equal(status.RootElement.GetProperty("clusterMac").GetString(), mac);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task UdpAssociate6_Datagrams_LandOnTheNodeHoldingTheControlConnection()
    {
        var owners = await fixture.OwnersAsync(1, Lab.ClientAddresses6);
        var sources = Lab.ClientAddresses6.GroupBy(a => owners[a.ToString()]).SelectMany(g => g.Take(3)).ToArray();
        Assert.Equal(9, sources.Length);
        var options = fixture.Traffic(TimeSpan.FromSeconds(2), udp: sources, ipv6: true) with { ConnectTarget = null };
        var results = await new TrafficGenerator(Lab.Client, options).RunAsync().WithTimeout(RunBound);
        output.WriteLine(results.Summary());
        var why = $"{results.Summary()}\n{fixture.Describe()}";

        Assert.Equal(sources.Length, results.Udp.Count);
        // The relay is the IPv6 VIP at a port in the slice of the node that answered the control connection.
        LabAssert.All(results.Udp,
            u => u.SetupFailure is null && u.ControlBreak is null && IPEndPoint.Parse(u.Relay ?? "[::]:0").Address.Equals(ClusterLab.Vip6Address)
                && u.Node == owners[u.Source] && u.Sent > 5 && u.Lost == 0,
            u => $"{u} (owner {owners[u.Source]})\n{why}");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task SigkillOfL2Bal6_OnOneNode_OthersCoverItsIpv6ClientsAndItsTablesAreGone()
    {
        const int victim = 2;
        var before = await fixture.OwnersAsync(1, Lab.ClientAddresses6);
        var victimSources = before.Where(o => o.Value == victim).Select(o => o.Key).ToHashSet();
        Assert.NotEmpty(victimSources);

        var l2bal = Lab.Balancer(victim)!;
        ClusterLab.Signal(l2bal, LabSignals.Kill);
        Assert.True(await l2bal.WaitForExitAsync(TimeSpan.FromSeconds(10)), fixture.Describe());
        await fixture.WaitForStatusAsync([1, 3], s =>
            s.Values.All(v => v.PeerStates[victim] == "dead" && v.Owners.GetValueOrDefault("none") == 0 && v.OwnedBy(victim) == 0)
            && s[1].Held + s[3].Held == s[1].Buckets,
            "nodes 1 and 3 cover node 2's buckets");
        Assert.DoesNotContain("l2bal", await fixture.ListTablesAsync(victim), StringComparison.Ordinal);

        var after = await fixture.OwnersAsync(1, Lab.ClientAddresses6);
        using var detector = await DuplicateAnswerDetector.StartAsync(Lab, ipv6: true);
        var options = fixture.Traffic(TimeSpan.FromSeconds(20), ipv6: true) with { MaxConnects = 2 * BalancerClusterFixtureBase.ClientCount };
        var results = await new TrafficGenerator(Lab.Client, options).RunAsync().WithTimeout(RunBound);
        var seen = await detector.StopAsync();
        output.WriteLine($"{results.Summary()}\n{seen.Summary()}");
        var why = $"{results.Summary()}\n{seen.Summary()}\n{fixture.Describe()}";

        LabAssert.All(results.Connects, c => c.Outcome == TrafficOutcome.Ok && c.Node == after[c.Source] && c.Node != victim, c => $"{c}\n{why}");
        LabAssert.All(victimSources, s => results.PerSource[s].Succeeded > 0, s => $"{s}: {results.PerSource[s]}\n{why}");
        Assert.All(before.Where(o => o.Value != victim), o => Assert.Equal(o.Value, after[o.Key]));
        seen.AssertSingleAnswers(fixture.Describe);
    }

    /// <summary><c>kernel.ipv6.acceptedNew</c> of every node.</summary>
    private async Task<IReadOnlyDictionary<int, long>> Ipv6AcceptedNewAsync()
    {
        var counts = new Dictionary<int, long>();
        for (var k = 1; k <= 3; k++)
        {
            using var doc = JsonDocument.Parse((await fixture.StatusAsync(k)).Json);
            counts[k] = doc.RootElement.GetProperty("kernel").GetProperty("ipv6").GetProperty("acceptedNew").GetInt64();
        }

        return counts;
    }
}

/// <summary>The dual-stack cluster: both VIPs on every node, proxies on both, timing as <see cref="BalancerClusterFixture"/>'s.</summary>
public sealed class DualStackClusterFixture : BalancerClusterFixtureBase
{
    public DualStackClusterFixture()
    {
        DualStack = true;
        BalancerArgs = ["--advert-interval", "50ms", "--dead-after", "6"];
    }
}

[CollectionDefinition(Name)]
public sealed class DualStackClusterGroup : ICollectionFixture<DualStackClusterFixture>
{
    public const string Name = "dual-stack-cluster";
}
