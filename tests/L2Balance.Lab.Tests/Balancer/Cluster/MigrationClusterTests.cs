using System.Globalization;
using System.Net;
using System.Net.Sockets;
using L2Balance.Lab.Cluster;
using L2Balance.Lab.Tests.Balancer.Control;
using L2Balance.Lab.Tests.Proxy;
using L2Balance.Tests.Common;
using Xunit;
using Xunit.Abstractions;

namespace L2Balance.Lab.Tests.Balancer.Cluster;

/// <summary>The single-IP cluster with <c>--migrate NODE-ADDRESS</c> on every l2bal and metrics on every l2proxy.</summary>
public sealed partial class MigrationClusterFixture : SingleIpClusterFixture
{
    protected override string[] NodeBalancerArgs(int k) => ["--migrate", ClusterLab.NodeAddress(k).ToString()];

    protected override LabProcess StartNodeProxy(int k) => Lab.StartProxy(k, "--metrics", $"127.0.0.1:{ProxyMetricsPort}");
}

[CollectionDefinition(Name)]
public sealed class MigrationClusterGroup : ICollectionFixture<MigrationClusterFixture>
{
    public const string Name = "migration-cluster";
}

/// <summary>
/// Both halves of issue 19 together (docs/design.md#migration-orchestration): l2bal drives its
/// l2proxy, the sessions travel to the proxies of their buckets' new owners, and the filters of both
/// nodes take the moved flows.
/// </summary>
[Collection(MigrationClusterGroup.Name)]
public sealed class MigrationClusterTests(MigrationClusterFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>Long CONNECT sessions of the drained node's clients.</summary>
    private const int Sessions = 300;

    private const int Drained = 2;
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(10);
    private ClusterLab Lab => fixture.Lab;

    public Task InitializeAsync() => fixture.RestoreAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task DrainMigrate_SessionsOfTheDrainedNode_ContinueOnTheirBucketsNewOwnersEveryByteOnce()
    {
        var sources = await fixture.SourcesOfAsync(Drained);
        using var listener = fixture.ListenOnTarget(Sessions);
        using var stop = new CancellationTokenSource();
        var sessions = new List<ClusterSession>();
        try
        {
            await fixture.OpenSessionsAsync(sessions, sources, Sessions, listener, 3000, stop.Token);

            await Task.Delay(TimeSpan.FromSeconds(1));
            var baseline = sessions.Select(s => s.Session.LongestPause).ToList();
            sessions.ForEach(s => s.Session.ResetLongestPause());
            var listedBefore = await fixture.ListAsync(Drained);
            Assert.True(listedBefore.Count == Sessions && listedBefore.All(s => s.State == "movable"),
                $"node 2 lists {listedBefore.Count} of {Sessions}: {string.Join(", ", listedBefore.Select(s => s.State).Distinct())}\n{fixture.Describe()}");

            // Counters of earlier tests of the collection (same daemons): this test's figures are the differences.
            var before = await fixture.CountsAsync(Drained);
            var cpu = Enumerable.Range(1, 3).Select(CpuTicks).ToArray();
            var started = System.Diagnostics.Stopwatch.StartNew();
            var drain = await Lab.RunOnNode(Drained, ClusterBinaries.L2Bal, ["drain", "--migrate"], Step).WithTimeout(Step);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"drain --migrate of {Sessions} sessions answered in {started.Elapsed.TotalMilliseconds:F0} ms: {drain.StdOut.Trim()}"));
            cpu = [.. Enumerable.Range(1, 3).Select(k => CpuTicks(k) - cpu[k - 1])];
            var migrations = await MigrateControlTests.MigrationsWhenAsync(Lab, Drained, m => m.GetProperty("inProgress").GetInt64() == 0 && m.GetProperty("done").GetInt64() > before.Done);
            await Task.Delay(TimeSpan.FromSeconds(2));
            var stuck = await MigrationClusterFixture.FinishAsync(sessions, stop, TimeSpan.FromSeconds(30));
            var why = $"drain: {drain}\nmigrations: {migrations}\n{fixture.Describe()}";
            Assert.True(stuck.Count == 0, $"{stuck.Count} sessions did not end within 30 s of the stop:\n{string.Join('\n', stuck.Take(5))}\n{why}");

            // l2bal's counters: every session moved, none refused.
            Assert.True(drain.Succeeded, why);
            var after = await fixture.CountsAsync(Drained);
            Assert.Equal(Sessions, after.Done - before.Done);
            Assert.True(after.Refused == before.Refused, why);

            // Every byte once and in order both ways, none cut.
            var broken = sessions.Where(s => !s.Intact).ToList();
            Assert.True(broken.Count == 0, $"{broken.Count} sessions broken:\n{string.Join('\n', broken.Take(5))}\n{why}");

            // Each continued on its bucket's new owner: that node's proxy counted it in, the drained one out and holds none.
            var newOwners = await fixture.OwnersAsync(1, sources);
            var expected = sessions.GroupBy(s => newOwners[s.Source.ToString()]).ToDictionary(g => g.Key, g => g.Count());
            Assert.DoesNotContain(Drained, expected.Keys);
            Assert.Equal(["end"], await MigrationLab.ControlAsync(Lab.Nodes[Drained - 1], "list"));
            Assert.Equal(0, await fixture.ProxyMetricAsync(Drained, "l2proxy_sessions_active"));
            Assert.Equal(Sessions, after.Out[Drained - 1] - before.Out[Drained - 1]);
            foreach (var k in new[] { 1, 3 })
            {
                Assert.Equal(expected.GetValueOrDefault(k), after.In[k - 1] - before.In[k - 1]);
            }

            output.WriteLine($"CPU of l2bal and l2proxy during the drain, ticks of 10 ms, nodes 1, 2, 3: {string.Join(", ", cpu)}");
            output.WriteLine(MigrationPrimitiveTests.Figures("longest gap between arrivals before the drain (the baseline)", baseline));
            output.WriteLine(MigrationPrimitiveTests.Figures("pause seen by the ends (longest gap between arrivals)", [.. sessions.Select(s => s.Session.LongestPause)]));
        }
        finally
        {
            await stop.CancelAsync();
            sessions.ForEach(s => s.Session.Dispose());
        }
    }

    /// <summary>User and system CPU of node k's l2bal and l2proxy so far (/proc/PID/stat, clock ticks).</summary>
    private long CpuTicks(int k) => new[] { Lab.Balancer(k)!, Lab.Proxy(k)! }.Sum(p =>
    {
        var stat = File.ReadAllText($"/proc/{p.Id}/stat");
        var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
    });
}
