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
/// Issue 17's IPv6 VIP on the three-node segment (docs/design.md#the-ip6-filter), beside the IPv4 VIP
/// (<see cref="DualStackLabTests"/>) or alone (<see cref="Ipv6OnlyLabTests"/>); every proxy listens on both.
/// The IPv6 variants of <see cref="BalancerLabTests"/>' connection, UDP ASSOCIATE and cover tests, the
/// ownership `l2bal owner` names for IPv6 clients, hand-back and a drain of IPv6 sessions; the failure matrix stays IPv4.
/// </summary>
public abstract class Ipv6LabTestsBase<TFixture>(TFixture fixture, ITestOutputHelper output) : IAsyncLifetime
    where TFixture : BalancerClusterFixtureBase
{
    private static readonly TimeSpan RunBound = TimeSpan.FromSeconds(60);
    private ClusterLab Lab => fixture.Lab;

    /// <summary>
    /// The seed the cluster derives (docs/design.md#the-vip-and-the-cluster-mac), spelled here apart from l2bal:
    /// the IPv4 VIP as a number whenever there is one, else the IPv6 VIP's four 32-bit words XORed.
    /// </summary>
    private uint Seed
    {
        get
        {
            if (!fixture.Ipv6Only)
            {
                return BinaryPrimitives.ReadUInt32BigEndian(ClusterLab.VipAddress.GetAddressBytes());
            }
            var bytes = ClusterLab.Vip6Address.GetAddressBytes();
            return Enumerable.Range(0, 4).Aggregate(0u, (x, i) => x ^ BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(4 * i)));
        }
    }

    public Task InitializeAsync() => fixture.RestoreAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Owner6_OfEveryIpv6Client_IsTheMirrorsOnEveryNode()
    {
        var buckets = (await fixture.StatusAsync(1)).Buckets;
        var mirror = Lab.ClientAddresses6.ToDictionary(a => a.ToString(), a => Ownership.DefaultOwner(BucketHash.Bucket(a, buckets, Seed), 3, buckets));
        for (var k = 1; k <= 3; k++)
        {
            var named = await fixture.OwnersAsync(k, Lab.ClientAddresses6);
            Assert.Equal(mirror.OrderBy(p => p.Key), named.OrderBy(p => p.Key));
        }

        Assert.Equal([1, 2, 3], mirror.Values.Distinct().Order());
        using var status = JsonDocument.Parse((await fixture.StatusAsync(1)).Json);
        Assert.Equal(ClusterLab.Vip6Address.ToString(), status.RootElement.GetProperty("vip6").GetString());
        Assert.Equal(fixture.Ipv6Only ? null : ClusterLab.VipAddress.ToString(), status.RootElement.GetProperty("vip").GetString());

        // Alone, the IPv6 VIP has its flow table and no ip one, and no ARP socket; every node announced it.
        for (var k = 1; k <= 3; k++)
        {
            var tables = await fixture.ListTablesAsync(k);
            Assert.Contains("table ip6 l2bal", tables, StringComparison.Ordinal);
            Assert.Equal(!fixture.Ipv6Only, tables.Contains("table ip l2bal", StringComparison.Ordinal));
            Assert.True((await fixture.StatusAsync(k)).SegmentCount("ndAnnouncements") >= 1, $"node {k} sent no unsolicited NA\n{fixture.Describe()}");
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Connection6_FromAnyIpv6Client_IsServedByItsNamedOwnerOnly()
    {
        var before = await Ipv6AcceptedNewAsync();
        // The router forgets the VIP: it solicits again, and every node answers that solicitation (docs/design.md#ndp).
        (await Lab.Router.RunAsync("ip", ["-6", "neigh", "flush", "to", ClusterLab.Vip6Address.ToString(), "dev", "eth0"], TimeSpan.FromSeconds(10))).EnsureSuccess();
        var answeredBefore = await SegmentCountsAsync("ndAnswers");
        var results = await ClusterScenarios.ConnectionsServedByNamedOwnerAsync(fixture, output, ipv6: true);

        // The ip6 tables took them: each node's count of new IPv6 flows grew by at least its own connections.
        var after = await Ipv6AcceptedNewAsync();
        for (var k = 1; k <= 3; k++)
        {
            var served = results.Connects.Count(c => c.Node == k);
            Assert.True(after[k] - before[k] >= served, $"node {k}: kernel.ipv6.acceptedNew {before[k]} → {after[k]}, served {served}\n{results.Summary()}");
        }
        var answeredAfter = await SegmentCountsAsync("ndAnswers");
        var solicited = await SegmentCountsAsync("ndSolicitations");
        LabAssert.All(Enumerable.Range(1, 3), k => answeredAfter[k] > answeredBefore[k] && solicited[k] >= answeredAfter[k],
            k => $"node {k}: ndAnswers {answeredBefore[k]} → {answeredAfter[k]}, ndSolicitations {solicited[k]}\n{fixture.Describe()}");

        // The router resolved the IPv6 VIP by neighbour discovery to the cluster MAC, a group MAC in multicast mode.
        var mac = await Lab.RouterVipMacAsync(ClusterLab.Vip6Address).WithTimeout(BalancerClusterFixtureBase.Deadline);
        using var status = JsonDocument.Parse((await fixture.StatusAsync(1)).Json);
        Assert.Equal(status.RootElement.GetProperty("clusterMac").GetString(), mac);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public Task UdpAssociate6_Datagrams_LandOnTheNodeHoldingTheControlConnection() =>
        ClusterScenarios.UdpAssociateLandsOnTheOwnerAsync(fixture, output, ipv6: true);

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task SigkillOfL2Bal6_OnOneNode_OthersCoverItsIpv6ClientsAndItGetsThemBackOnRejoin()
    {
        await ClusterScenarios.SigkillIsCoveredAsync(fixture, output, ipv6: true);
        await ClusterScenarios.RejoinHandsBackAsync(fixture, output, ipv6: true);
    }

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

    /// <summary>The <c>segment</c> counter <paramref name="name"/> of every node.</summary>
    private async Task<IReadOnlyDictionary<int, long>> SegmentCountsAsync(string name)
    {
        var counts = new Dictionary<int, long>();
        for (var k = 1; k <= 3; k++)
        {
            counts[k] = (await fixture.StatusAsync(k)).SegmentCount(name);
        }

        return counts;
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

/// <summary>Both VIPs on every node.</summary>
[Collection(DualStackClusterGroup.Name)]
public sealed class DualStackLabTests(DualStackClusterFixture fixture, ITestOutputHelper output) : Ipv6LabTestsBase<DualStackClusterFixture>(fixture, output);

/// <summary>The IPv6 VIP alone on every node (docs/design.md#an-ipv6-vip-alone).</summary>
[Collection(Ipv6OnlyClusterGroup.Name)]
public sealed class Ipv6OnlyLabTests(Ipv6OnlyClusterFixture fixture, ITestOutputHelper output) : Ipv6LabTestsBase<Ipv6OnlyClusterFixture>(fixture, output);

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

/// <summary>The IPv6 VIP alone: the dual-stack lab, l2bal without the IPv4 VIP, its health probe on the IPv6 VIP.</summary>
public sealed class Ipv6OnlyClusterFixture : BalancerClusterFixtureBase
{
    public Ipv6OnlyClusterFixture()
    {
        Ipv6Only = true;
        BalancerArgs = ["--advert-interval", "50ms", "--dead-after", "6"];
    }
}

[CollectionDefinition(Name)]
public sealed class Ipv6OnlyClusterGroup : ICollectionFixture<Ipv6OnlyClusterFixture>
{
    public const string Name = "ipv6-only-cluster";
}
