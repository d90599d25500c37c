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
/// <see cref="BalancerLabTests"/>' connection, UDP ASSOCIATE and cover tests, the ownership
/// `l2bal owner` names for IPv6 clients and a drain of IPv6 sessions; the failure matrix stays IPv4.
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
        var before = await Ipv6AcceptedNewAsync();
        var results = await ClusterScenarios.ConnectionsServedByNamedOwnerAsync(fixture, output, ipv6: true);

        // The ip6 tables took them: each node's count of new IPv6 flows grew by at least its own connections.
        var after = await Ipv6AcceptedNewAsync();
        for (var k = 1; k <= 3; k++)
        {
            var served = results.Connects.Count(c => c.Node == k);
            Assert.True(after[k] - before[k] >= served, $"node {k}: kernel.ipv6.acceptedNew {before[k]} → {after[k]}, served {served}\n{results.Summary()}");
        }

        // The router resolved the IPv6 VIP by neighbour discovery to the cluster MAC, a group MAC in multicast mode.
        var mac = await Lab.RouterVipMacAsync(ClusterLab.Vip6Address).WithTimeout(BalancerClusterFixtureBase.Deadline);
        using var status = JsonDocument.Parse((await fixture.StatusAsync(1)).Json);
        Assert.Equal(status.RootElement.GetProperty("clusterMac").GetString(), mac);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public Task UdpAssociate6_Datagrams_LandOnTheNodeHoldingTheControlConnection() =>
        ClusterScenarios.UdpAssociateLandsOnTheOwnerAsync(fixture, output, ipv6: true);

    [SkippableFact(typeof(LabUnavailableException))]
    public Task SigkillOfL2Bal6_OnOneNode_OthersCoverItsIpv6ClientsAndItsTablesAreGone() =>
        ClusterScenarios.SigkillIsCoveredAsync(fixture, output, ipv6: true);

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Drain6_Ipv6SessionsOfTheDrainedNode_AreCountedAsDrainingAndNeverCut()
    {
        const int victim = 2;
        var owners = await fixture.OwnersAsync(1, Lab.ClientAddresses6);
        var sessions = Lab.ClientAddresses6.GroupBy(a => owners[a.ToString()]).SelectMany(g => g.Take(2)).ToArray();
        using var detector = await DuplicateAnswerDetector.StartAsync(Lab, ipv6: true);
        var generator = new TrafficGenerator(Lab.Client, fixture.Traffic(TimeSpan.FromSeconds(6), sessions, ipv6: true));
        var running = generator.RunAsync();
        await LabWait.UntilAsync(() => generator.Live.SessionsUp == sessions.Length && generator.Live.ConnectsOk >= 30, running, "IPv6 sessions up and connects flowing", TimeSpan.FromSeconds(20));

        var drain = await Lab.RunOnNode(victim, ClusterBinaries.L2Bal, ["drain"]).WithTimeout(BalancerClusterFixtureBase.Deadline);
        Assert.True(drain.Succeeded, drain.ToString());
        // Only IPv6 flows carry a conntrack mark here (the probes come from lo): draining > 0 is the ip6 flows' count.
        await fixture.WaitForStatusAsync([1, 2, 3], s =>
            s[victim].State == "draining" && s[victim].Held == 0 && s[victim].Draining > 0 && s[1].Held + s[3].Held == s[1].Buckets,
            "node 2 draining with its IPv6 flows, its buckets held by 1 and 3");
        var coveredAt = generator.ElapsedMs;
        var results = await running.WithTimeout(RunBound);
        await fixture.WaitForStatusAsync([victim], s => s[victim].Draining == 0, "node 2 has no IPv6 flows left to drain");
        var seen = await detector.StopAsync();
        var why = $"covered at {coveredAt:0} ms\n{results.Summary()}\n{seen.Summary()}\n{fixture.Describe()}";
        output.WriteLine($"{results.Summary()}\n{seen.Summary()}");

        seen.AssertSingleAnswers(fixture.Describe);
        LabAssert.All(results.Sessions, s => s.Break is null, s => $"{s}\n{why}");
        Assert.Contains(results.Sessions, s => s.Node == victim);
        Assert.DoesNotContain(results.Connects, c => c.StartMs > coveredAt && c.Node == victim);
        LabAssert.All(results.Connects.Where(c => c.StartMs > coveredAt), c => c.Outcome == TrafficOutcome.Ok, c => $"{c}\n{why}");
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
