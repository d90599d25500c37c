using System.Net;
using L2Balance.Lab.Cluster;
using L2Balance.Tests.Common;
using Xunit;
using Xunit.Abstractions;

namespace L2Balance.Lab.Tests.Balancer.Cluster;

/// <summary>
/// Issue 4's lab checks that apply in both proxy modes: <see cref="BalancerLabTests"/> (external = the
/// node's address) and <see cref="BalancerLabSingleIpTests"/> (external = the VIP, so the relay's
/// target side too takes its ports from the node's slice: docs/design.md#single-ip-mode).
/// Each test starts from an all-up cluster (<see cref="BalancerClusterFixtureBase.RestoreAsync"/>).
/// </summary>
public abstract class BalancerLabTestsBase<TFixture>(TFixture fixture, ITestOutputHelper output) : IAsyncLifetime
    where TFixture : BalancerClusterFixtureBase
{
    private protected static readonly TimeSpan RunBound = TimeSpan.FromSeconds(60);

    private protected TFixture Fixture => fixture;

    private protected ITestOutputHelper Output => output;

    private protected ClusterLab Lab => fixture.Lab;

    public Task InitializeAsync() => fixture.RestoreAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [SkippableFact(typeof(LabUnavailableException))]
    public Task UdpAssociate_Datagrams_LandOnTheNodeHoldingTheControlConnection() =>
        ClusterScenarios.UdpAssociateLandsOnTheOwnerAsync(Fixture, Output, ipv6: false);
}

/// <summary>
/// Issue 4's lab checks of l2bal on a three-node segment: who serves whom, UDP ASSOCIATE
/// locality (with <see cref="BalancerLabTestsBase{TFixture}"/>), SIGKILL and SIGSTOP of a daemon,
/// a firewall reload, both MAC modes, forged adverts.
/// </summary>
[Collection(BalancerClusterGroup.Name)]
public sealed class BalancerLabTests(BalancerClusterFixture fixture, ITestOutputHelper output) : BalancerLabTestsBase<BalancerClusterFixture>(fixture, output)
{
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Metrics_Scraped_ArePrometheusTextWithThisNodesShare()
    {
        var share = (await Fixture.StatusAsync(1)).Held;
        var scrape = await Lab.RunOnNode(1, "curl", ["-sS", "-m", "5", $"http://127.0.0.1:{BalancerClusterFixture.MetricsPort}/metrics"])
            .WithTimeout(BalancerClusterFixtureBase.Deadline);
        Assert.True(scrape.Succeeded, scrape.ToString());
        Assert.Contains("# TYPE l2bal_buckets_held gauge", scrape.StdOut, StringComparison.Ordinal);
        Assert.Contains($"\nl2bal_buckets_held {share}\n", scrape.StdOut, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^l2bal_adverts_received_total [1-9][0-9]*$", scrape.StdOut);
        Assert.Matches(@"(?m)^l2bal_peers_alive 2$", scrape.StdOut);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Connection_FromAnyClient_IsServedByItsNamedOwnerOnly()
    {
        await ClusterScenarios.ConnectionsServedByNamedOwnerAsync(Fixture, Output, ipv6: false);

        // Multicast mode (the fixture's): the router resolved the VIP to a group MAC.
        var mac = await Lab.RouterVipMacAsync().WithTimeout(BalancerClusterFixtureBase.Deadline);
        Assert.True(mac.Length == 17 && (Convert.ToByte(mac[..2], 16) & 1) == 1, $"router has '{mac}' for the VIP");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public Task SigkillOfL2Bal_OnOneNode_OthersCoverAndItsTablesAreGone() =>
        ClusterScenarios.SigkillIsCoveredAsync(Fixture, Output, ipv6: false);

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task SigstopOfL2BalThenSigcont_OnOneNode_NoFlowIsAnsweredTwiceAndAllConverge()
    {
        var (results, seen) = await UnderTrafficAsync(() => StopForAsync(TimeSpan.FromSeconds(2), Lab.Balancer(2)!));
        var why = $"{results.Summary()}\n{seen.Summary()}\n{Fixture.Describe()}";

        seen.AssertSingleAnswers(Fixture.Describe);

        // Established flows are accepted whatever their bucket, on every node, the stopped one included.
        LabAssert.All(results.Sessions, s => s.Break is null, s => $"{s}\n{why}");
        await Fixture.WaitAllUpAsync();
    }

    /// <summary>
    /// A paused VM stops every daemon on it at once (measured here: all three logged a stall at
    /// the same millisecond). SIGSTOP of all three l2bal for a second, far beyond the dead time:
    /// each wakes, listens again (its lease ran out), and takes the pause off its peers' silence,
    /// so nobody declares anybody dead, every node gets its own buckets back, and no session breaks.
    /// </summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task SigstopOfEveryL2Bal_AsInAPausedMachine_DeclaresNobodyDead()
    {
        var daemons = Enumerable.Range(1, 3).Select(k => Lab.Balancer(k)!).ToArray();
        var marks = new List<BalancerStatus>();
        foreach (var k in Enumerable.Range(1, 3))
        {
            marks.Add(await Fixture.StatusAsync(k));
        }
        var (results, seen) = await UnderTrafficAsync(() => StopForAsync(TimeSpan.FromSeconds(1), daemons));
        await Fixture.WaitAllUpAsync();
        var after = new List<BalancerStatus>();
        foreach (var k in Enumerable.Range(1, 3))
        {
            after.Add(await Fixture.StatusAsync(k));
        }
        var why = $"{results.Summary()}\n{seen.Summary()}\n{string.Join("\n", after.SelectMany(s => s.EventsAfter(marks[s.NodeId - 1].LastEventSeq).Select(e => $"node {s.NodeId}: {e}")))}\n{Fixture.Describe()}";

        Assert.All(after, s => Assert.True(s.Count("stall") > marks[s.NodeId - 1].Count("stall"), $"node {s.NodeId} recorded no stall\n{why}"));
        Assert.All(after, s => Assert.True(s.Count("peer-dead") == marks[s.NodeId - 1].Count("peer-dead"), $"node {s.NodeId} declared a peer dead\n{why}"));
        seen.AssertSingleAnswers(Fixture.Describe);
        LabAssert.All(results.Sessions, s => s.Break is null, s => $"{s}\n{why}");
    }

    /// <summary>
    /// Two long-lived sessions per node and a stream of new CONNECTs for 5 s, with <paramref name="fault"/>
    /// run once they flow, while the router's capture watches for flows answered twice.
    /// </summary>
    private async Task<(TrafficResults Results, DetectorReport Seen)> UnderTrafficAsync(Func<Task> fault)
    {
        var owners = await Fixture.OwnersAsync();
        var sessions = Lab.ClientAddresses.GroupBy(a => owners[a.ToString()]).SelectMany(g => g.Take(2)).ToArray();

        using var detector = await DuplicateAnswerDetector.StartAsync(Lab);
        var generator = new TrafficGenerator(Lab.Client, Fixture.Traffic(TimeSpan.FromSeconds(5), sessions));
        var run = generator.RunAsync();
        await LabWait.UntilAsync(() => generator.Live.SessionsUp == sessions.Length && generator.Live.ConnectsOk >= 30, run, "sessions up and connects flowing");
        await fault();
        var results = await run.WithTimeout(RunBound);
        var seen = await detector.StopAsync();
        Output.WriteLine($"{results.Summary()}\n{seen.Summary()}");
        return (results, seen);
    }

    /// <summary>SIGSTOP to every one of <paramref name="daemons"/>, then SIGCONT after <paramref name="duration"/>.</summary>
    private static async Task StopForAsync(TimeSpan duration, params LabProcess[] daemons)
    {
        try
        {
            foreach (var daemon in daemons)
            {
                ClusterLab.Signal(daemon, LabSignals.Stop);
            }
            await Task.Delay(duration);
        }
        finally
        {
            foreach (var daemon in daemons)
            {
                ClusterLab.Signal(daemon, LabSignals.Cont);
            }
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task NftFlushRuleset_OnANode_ChangesNothing()
    {
        const int k = 2;
        var owners = await Fixture.OwnersAsync();
        var flush = await Lab.RunOnNode(k, "nft", ["flush", "ruleset"]).WithTimeout(BalancerClusterFixtureBase.Deadline);
        Assert.True(flush.Succeeded, flush.ToString());

        var tables = await Fixture.ListTablesAsync(k);
        Assert.Contains("table netdev l2bal", tables, StringComparison.Ordinal);
        Assert.Contains("table ip l2bal", tables, StringComparison.Ordinal);

        using var detector = await DuplicateAnswerDetector.StartAsync(Lab);
        var results = await new TrafficGenerator(Lab.Client, Fixture.Traffic(TimeSpan.FromSeconds(2))).RunAsync().WithTimeout(RunBound);
        var seen = await detector.StopAsync();
        Output.WriteLine($"{results.Summary()}\n{seen.Summary()}");
        var why = $"{results.Summary()}\n{seen.Summary()}\n{Fixture.Describe()}";
        LabAssert.All(results.Connects, c => c.Outcome == TrafficOutcome.Ok && c.Node == owners[c.Source], c => $"{c}\n{why}");
        Assert.Contains(results.Connects, c => c.Node == k);
        seen.AssertSingleAnswers(Fixture.Describe);
        Assert.All((await Fixture.WaitForStatusAsync([1, 2, 3], s => true, "status")).Values, s => Assert.True(BalancerClusterFixtureBase.AllUp(s), s.Json));
    }

    /// <summary>
    /// The fixture runs multicast mode (every other test here covers it, and
    /// <see cref="Connection_FromAnyClient_IsServedByItsNamedOwnerOnly"/> checks its
    /// group MAC); this one restarts the cluster in unicast-flood mode.
    /// </summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task UnicastFloodMacMode_EveryClient_IsServedByItsOwner()
    {
        const string mode = "unicast-flood";
        // Every node must run the same mode: stop all three, then start all three in the mode.
        try
        {
            for (var k = 1; k <= BalancerClusterFixtureBase.NodeCount; k++)
            {
                Lab.Balancer(k)!.Stop();
            }

            for (var k = 1; k <= BalancerClusterFixtureBase.NodeCount; k++)
            {
                Fixture.StartBalancer(k, "--mac-mode", mode);
            }

            var statuses = await Fixture.WaitForStatusAsync([1, 2, 3], s => s.Values.All(BalancerClusterFixtureBase.AllUp), $"all up in {mode} mode");
            var owners = await Fixture.OwnersAsync();
            using var detector = await DuplicateAnswerDetector.StartAsync(Lab);
            var results = await new TrafficGenerator(Lab.Client, Fixture.Traffic(TimeSpan.FromSeconds(2))).RunAsync().WithTimeout(RunBound);
            var seen = await detector.StopAsync();
            Output.WriteLine($"{mode}: {results.Summary()}\n{seen.Summary()}");
            var why = $"{results.Summary()}\n{seen.Summary()}\n{Fixture.Describe()}";
            Assert.Equal(BalancerClusterFixtureBase.ClientCount, results.PerSource.Count);
            LabAssert.All(results.Connects, c => c.Outcome == TrafficOutcome.Ok && c.Node == owners[c.Source], c => $"{c}\n{why}");
            Assert.Equal([1, 2, 3], results.PerNode.Keys.Order());
            seen.AssertSingleAnswers(Fixture.Describe);

            // The router resolved the VIP to the cluster MAC of the mode: group bit set only in multicast mode.
            var mac = await Lab.RouterVipMacAsync().WithTimeout(BalancerClusterFixtureBase.Deadline);
            Assert.False(string.IsNullOrEmpty(mac), $"{mode}: the router has no MAC for the VIP");
            var groupBit = (Convert.ToByte(mac[..2], 16) & 1) == 1;
            Assert.True(groupBit == (mode == "multicast"), $"{mode}: router has {mac} for the VIP\n{statuses[1].Json}");
        }
        finally
        {
            for (var k = 1; k <= BalancerClusterFixtureBase.NodeCount; k++)
            {
                Lab.Balancer(k)!.Stop();
            }

            for (var k = 1; k <= BalancerClusterFixtureBase.NodeCount; k++)
            {
                Fixture.StartBalancer(k);
            }

            await Fixture.WaitAllUpAsync();
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task ForgedAdverts_FromAHostWithoutTheKey_AreRejectedAndChangeNothing()
    {
        var owners = await Fixture.OwnersAsync();
        var rejectedBefore = new Dictionary<int, long>();
        for (var k = 1; k <= BalancerClusterFixtureBase.NodeCount; k++)
        {
            // The forger's l2bal names its own key id (advert version 2): UnknownKey, no HMAC computed.
            rejectedBefore[k] = (await Fixture.StatusAsync(k)).Rejected("UnknownKey");
        }

        // A forger on the segment: l2bal with the right VIP and ids but another key, claiming to be node 2.
        await using var forger = await ForgerHost.StartAsync(Lab, Lab.WriteKeyFile("forger"), nodeId: 2, nodeCount: BalancerClusterFixtureBase.NodeCount);
        try
        {
            await Fixture.WaitForStatusAsync([1, 2, 3], s => s.Values.All(v => v.Rejected("UnknownKey") > rejectedBefore[v.NodeId] + 10), "every node counts the forged adverts as UnknownKey");
            var statuses = await Fixture.WaitForStatusAsync([1, 2, 3], s => true, "status");
            LabAssert.All(statuses.Values, s => BalancerClusterFixtureBase.AllUp(s), s => $"ownership changed:\n{s.Json}\n{Fixture.Describe()}");
            var during = await Fixture.OwnersAsync();
            Assert.Equal(owners.OrderBy(o => o.Key), during.OrderBy(o => o.Key));
        }
        finally
        {
            Output.WriteLine(forger.Process.Describe());
        }
    }
}

/// <summary>UDP ASSOCIATE locality in single-IP mode; who serves whom there is <see cref="SingleIpTests"/>' first test.</summary>
[Collection(SingleIpClusterGroup.Name)]
public sealed class BalancerLabSingleIpTests(SingleIpClusterFixture fixture, ITestOutputHelper output) : BalancerLabTestsBase<SingleIpClusterFixture>(fixture, output);

/// <summary>An extra namespace on the cluster's switch running an l2bal with a key of its own (a forger or a misconfigured node).</summary>
public sealed class ForgerHost : IAsyncDisposable
{
    private ForgerHost(LabHost host, LabProcess process)
    {
        Host = host;
        Process = process;
    }

    public LabHost Host { get; }

    public LabProcess Process { get; }

    /// <summary>Address 198.18.0.20, MAC 02:00:00:00:00:14, no proxy and no health probe.</summary>
    public static async Task<ForgerHost> StartAsync(ClusterLab lab, string keyFile, int nodeId, int nodeCount)
    {
        ArgumentNullException.ThrowIfNull(lab);
        var name = $"x{Environment.TickCount64 % 100000}";
        var host = lab.Network.AddHost(name);
        lab.Network.ConnectToSwitch(lab.Switch, host, "eth0");
        (await host.RunAsync("ip", ["link", "set", "eth0", "address", "02:00:00:00:00:14"], TimeSpan.FromSeconds(10)).WithTimeout()).EnsureSuccess();
        host.AddAddress("eth0", "198.18.0.20/24");
        var process = host.Start(ClusterBinaries.L2Bal,
            "run", "--interface", "eth0", "--vip", ClusterLab.VipCidr, "--node-id", $"{nodeId}", "--node-count", $"{nodeCount}", "--key-file", keyFile);
        return new ForgerHost(host, process);
    }

    public async ValueTask DisposeAsync()
    {
        Process.Stop();
        await Process.WaitForExitAsync(TimeSpan.FromSeconds(5));

        // Its switch port goes with its namespace when the lab is torn down; take the link down now so it stays off the segment.
        await Host.RunAsync("ip", ["link", "set", "eth0", "down"], TimeSpan.FromSeconds(10)).WithTimeout();
    }
}
