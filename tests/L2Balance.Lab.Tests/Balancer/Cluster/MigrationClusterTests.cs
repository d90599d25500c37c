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

/// <summary>The single-IP cluster, dual-stack (both VIPs), with <c>--migrate NODE-ADDRESS</c> on every l2bal and metrics on every l2proxy.</summary>
public partial class MigrationClusterFixture : SingleIpClusterFixture
{
    /// <summary>Both VIPs: a dual-stack cluster's sessions of either family move (docs/design.md#migration-filter).</summary>
    public MigrationClusterFixture() => DualStack = true;

    /// <summary>Worker processes of every l2proxy (<c>--workers</c>); worker i serves metrics on <see cref="SingleIpClusterFixture.ProxyMetricsPort"/> + i.</summary>
    public virtual int ProxyWorkers => 1;

    protected override string[] NodeBalancerArgs(int k) => ["--migrate", ClusterLab.NodeAddress(k).ToString()];

    protected override LabProcess StartNodeProxy(int k) => Lab.StartProxy(k,
        ["--metrics", $"127.0.0.1:{ProxyMetricsPort}", .. ProxyWorkers > 1 ? new[] { "--workers", ProxyWorkers.ToString(CultureInfo.InvariantCulture) } : []]);
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
public partial class MigrationClusterTests(MigrationClusterFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>Long CONNECT sessions of the drained node's clients.</summary>
    private const int Sessions = 300;

    /// <summary>Of them, bulk transfers (issue 19: "a few bulk transfers").</summary>
    private const int BulkSessions = 3;

    /// <summary>UDP associations of the drained node's clients moving beside them (issue 19: "UDP associations").</summary>
    private const int AssociationsAlongside = 10;

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
            await fixture.OpenSessionsAsync(sessions, sources, Sessions, listener, 3000, stop.Token, bulk: BulkSessions);
            await using var udp = await UdpTrafficAsync(AssociationsAlongside, [.. sources]);

            await Task.Delay(TimeSpan.FromSeconds(1));
            var baseline = sessions.Select(s => s.Session.LongestPause).ToList();
            sessions.ForEach(s => s.Session.ResetLongestPause());
            var listedBefore = await fixture.ListAsync(Drained);
            Assert.True(listedBefore.Count == Sessions + AssociationsAlongside && listedBefore.All(s => s.State == "movable"),
                $"node 2 lists {listedBefore.Count} of {Sessions + AssociationsAlongside}: {string.Join(", ", listedBefore.Select(s => s.State).Distinct())}\n{fixture.Describe()}");
            // With workers, the supervisor's ids name the worker by the remainder (docs/design.md#built-l2proxys-side-of-the-interface-issue-19): every worker holds some.
            Assert.Equal(fixture.ProxyWorkers, listedBefore.Select(s => s.Id % fixture.ProxyWorkers).Distinct().Count());

            var cpu = await DrainMigrateEveryOneMovesAsync(sessions, stop, sources, $"{Sessions} sessions and {AssociationsAlongside} UDP associations", udp);

            output.WriteLine($"CPU of l2bal and l2proxy during the drain, ticks of 10 ms, nodes 1, 2, 3: {string.Join(", ", cpu)}");
            output.WriteLine($"bytes captured while the flows moved and appended on restore (docs/design.md#the-pause), nodes 1, 3: {await fixture.ProxyMetricAsync(1, "l2proxy_migration_captured_bytes_total")}, {await fixture.ProxyMetricAsync(3, "l2proxy_migration_captured_bytes_total")}");
            output.WriteLine(MigrationPrimitiveTests.Figures("longest gap between arrivals before the drain (the baseline)", baseline));
            output.WriteLine(MigrationPrimitiveTests.Figures("pause seen by the ends (longest gap between arrivals)", [.. sessions.Select(s => s.Session.LongestPause)]));
        }
        finally
        {
            await stop.CancelAsync();
            sessions.ForEach(s => s.Session.Dispose());
        }
    }

    /// <summary>
    /// <c>drain --migrate</c> (<see cref="DrainMigrateAsync"/>) with <paramref name="sessions"/> (and the associations of
    /// <paramref name="udp"/>) running, then their streams stopped: every one ended and moved (none refused), every byte once
    /// and in order both ways, every association's datagrams going on, each on its bucket's new owner
    /// (<see cref="AssertOnNewOwnersAsync"/>). Returns the CPU ticks of the drain.
    /// </summary>
    private async Task<long[]> DrainMigrateEveryOneMovesAsync(List<ClusterSession> sessions, CancellationTokenSource stop, IReadOnlyList<IPAddress> sources, string what,
        UdpTraffic? udp = null)
    {
        var acksBefore = await AcksSentAsync();
        var lostBefore = await LostAtGoAsync();
        var associations = udp?.Flows.Count ?? 0;
        var (drain, migrations, answered, cpu, before) = await DrainMigrateAsync(sessions.Count + associations);
        var sentAtMove = udp?.SentNow();
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"drain --migrate of {what} answered in {answered.TotalMilliseconds:F0} ms: {drain.StdOut.Trim()}"));
        await Task.Delay(TimeSpan.FromSeconds(2));
        var stuck = await MigrationClusterFixture.FinishAsync(sessions, stop, TimeSpan.FromSeconds(30));
        if (udp is not null)
        {
            await udp.StopAsync();
        }
        var why = $"drain: {drain}\nmigrations: {migrations}\n{fixture.Describe()}";
        // Go came for every moved session and each went live on its new node (docs/design.md#failure-paths-of-a-move).
        var lost = await LostAtGoAsync() - lostBefore;
        Assert.True(lost == 0, $"{lost} sessions lost at Go on nodes 1 and 3\n{why}");
        Assert.True(stuck.Count == 0, $"{stuck.Count} sessions did not end within 30 s of the stop:\n{string.Join('\n', stuck.Take(5))}\n{why}");

        // l2bal's counters: every session moved, none refused.
        Assert.True(drain.Succeeded, why);
        Assert.Equal(sessions.Count + associations, migrations.GetProperty("done").GetInt64() - before.Done);
        Assert.True(Refused(migrations) == before.Refused, why);

        // Every byte once and in order both ways, none cut; every association's control connection intact and its datagrams echoed after the move.
        var broken = sessions.Where(s => !s.Intact).ToList();
        Assert.True(broken.Count == 0, $"{broken.Count} sessions broken:\n{string.Join('\n', broken.Take(5))}\n{why}");
        if (udp is not null)
        {
            output.WriteLine(AssertContinued(udp, sentAtMove!, why));
        }

        await AssertOnNewOwnersAsync([.. sessions.Select(s => s.Source), .. udp?.Flows.Select(f => f.Source) ?? []], sources, before);

        // Each restored TCP leg of a relay sent its end the acknowledgement it is owed, once; a UDP association's control connection sends none (docs/design.md#the-pause).
        Assert.Equal(2L * sessions.Count, await AcksSentAsync() - acksBefore);
        return cpu;
    }

    /// <summary>Acknowledgements the new owners' l2proxy sent after thaws (nodes 1 and 3, every worker).</summary>
    private async Task<long> AcksSentAsync() =>
        await fixture.ProxyMetricAsync(1, "l2proxy_migration_acks_total{result=\"sent\"}") + await fixture.ProxyMetricAsync(3, "l2proxy_migration_acks_total{result=\"sent\"}");

    /// <summary>Sessions whose Go came to nodes 1 and 3 but that could not go live there (every worker).</summary>
    private async Task<long> LostAtGoAsync() =>
        await fixture.ProxyMetricAsync(1, "l2proxy_migrations_lost_total") + await fixture.ProxyMetricAsync(3, "l2proxy_migrations_lost_total");

    /// <summary>
    /// <c>l2bal drain --migrate</c> on the drained node, once its run is done: the answer, l2bal's migrations, how long
    /// the answer took, the CPU ticks each node's l2bal and l2proxy spent meanwhile, and the counts from before.
    /// </summary>
    private async Task<(LabRunResult Drain, System.Text.Json.JsonElement Migrations, TimeSpan Answered, long[] Cpu, MigrationCounts Before)> DrainMigrateAsync(int sessions)
    {
        var before = await fixture.CountsAsync(Drained);
        var cpu = Enumerable.Range(1, 3).Select(CpuTicks).ToArray();
        var started = System.Diagnostics.Stopwatch.StartNew();
        var drain = await Lab.RunOnNode(Drained, ClusterBinaries.L2Bal, ["drain", "--migrate"], Step).WithTimeout(Step);
        var answered = started.Elapsed;
        cpu = [.. Enumerable.Range(1, 3).Select(k => CpuTicks(k) - cpu[k - 1])];
        var migrations = await MigrateControlTests.MigrationsWhenAsync(Lab, Drained,
            // Every session accounted for: between two batches (the prepare step) inProgress is 0 with batches still to come.
            m => m.GetProperty("inProgress").GetInt64() == 0 && m.GetProperty("done").GetInt64() + Refused(m) >= before.Done + before.Refused + sessions);
        return (drain, migrations, answered, cpu, before);
    }

    /// <summary>Sessions l2bal refused to move, every reason together.</summary>
    private static long Refused(System.Text.Json.JsonElement migrations) => migrations.GetProperty("refused").EnumerateObject().Sum(r => r.Value.GetInt64());

    /// <summary>
    /// Each session moved (one client address per session) continued on its bucket's new owner: that node's proxy
    /// counted it in since <paramref name="before"/>, the drained one out, and the drained one holds none.
    /// </summary>
    private async Task AssertOnNewOwnersAsync(IReadOnlyList<IPAddress> clients, IReadOnlyList<IPAddress> sources, MigrationCounts before)
    {
        var newOwners = await fixture.OwnersAsync(1, sources);
        var expected = clients.GroupBy(a => newOwners[a.ToString()]).ToDictionary(g => g.Key, g => g.Count());
        Assert.DoesNotContain(Drained, expected.Keys);
        Assert.Equal(["end"], await MigrationLab.ControlAsync(Lab.Nodes[Drained - 1], "list"));
        Assert.Equal(0, await fixture.ProxyMetricAsync(Drained, "l2proxy_sessions_active"));
        Assert.Equal(clients.Count, await fixture.ProxyMetricAsync(Drained, "l2proxy_migrations_total{direction=\"out\"}") - before.Out[Drained - 1]);
        foreach (var k in new[] { 1, 3 })
        {
            Assert.Equal(expected.GetValueOrDefault(k), await fixture.ProxyMetricAsync(k, "l2proxy_migrations_total{direction=\"in\"}") - before.In[k - 1]);
        }
    }

    /// <summary>User and system CPU of node k's l2bal and l2proxy (with its workers) so far (/proc/PID/stat, clock ticks).</summary>
    private long CpuTicks(int k) => new[] { Lab.Balancer(k)!.Id, Lab.Proxy(k)!.Id }.Concat(Children(Lab.Proxy(k)!.Id)).Sum(pid =>
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
    });

    /// <summary>The child processes of <paramref name="pid"/> (its workers), from /proc/PID/task/TID/children.</summary>
    internal static IEnumerable<int> Children(int pid) => Directory.EnumerateDirectories($"/proc/{pid}/task")
        .SelectMany(t => ReadOrEmpty(Path.Combine(t, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
        .Select(c => int.Parse(c, CultureInfo.InvariantCulture));

    /// <summary>A thread that ended between the listing and the read has no children: empty.</summary>
    private static string ReadOrEmpty(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is DirectoryNotFoundException or FileNotFoundException)
        {
            return "";
        }
    }

}
