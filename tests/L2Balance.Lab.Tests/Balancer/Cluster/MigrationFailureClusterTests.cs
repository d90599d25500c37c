using System.Globalization;
using System.Net;
using System.Net.Sockets;
using L2Balance.Lab.Cluster;
using L2Balance.Tests.Common;
using Xunit;
using Xunit.Abstractions;

namespace L2Balance.Lab.Tests.Balancer.Cluster;

/// <summary>
/// Issue 19's failure paths and remaining scenarios on the migration cluster (docs/design.md#failure-paths-of-a-move):
/// a proxy killed on either side mid-run, <c>l2bal migrate</c> after a hand-back, a rolling restart.
/// Facts come from l2bal's <c>migrations</c>, the proxies' metrics and <c>list</c>, and the checked sessions.
/// </summary>
[Collection(MigrationClusterGroup.Name)]
public sealed class MigrationFailureClusterTests(MigrationClusterFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>Sessions of the drained node when a proxy is killed mid-run.</summary>
    private const int Sessions = 300;

    /// <summary>Sessions of the hand-back and of the rolling restart: one per client address (each node's buckets hold some).</summary>
    private const int FewSessions = 60;

    private const int Drained = 2;

    /// <summary>Why the rolling restart is skipped: the defect it finds, not fixed yet (docs/design.md#failure-paths-of-a-move).</summary>
    private static readonly TimeSpan Finish = TimeSpan.FromSeconds(15);
    private ClusterLab Lab => fixture.Lab;

    public Task InitializeAsync() => fixture.RestoreAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task DrainMigrate_ReceivingProxyKilledMidRun_SessionsNotMovedKeepRunningOnTheDrainedNode()
    {
        const int receiver = 3;
        var run = await DrainAndKillAsync([receiver], receiver, 5000);
        try
        {
            var (done, refused, inOne) = (run.After.Done - run.Before.Done, run.After.Refused - run.Before.Refused, run.After.In[0] - run.Before.In[0]);
            var why = Report(run, $"node {receiver} had taken {run.MovedInAtKill} when killed; node 2 moved {done}, refused {refused}; node 1 took {inOne}");

            // Every session counted once by node 2's l2bal: moved (to 1 or to the killed 3) or stayed (refused).
            Assert.True(done + refused == Sessions, why);
            // Stayed ones run on node 2, moved ones to node 1 run there; those that went to node 3 died with it. One holder each.
            var unheld = string.Join('\n', run.Sessions.Where(s => !run.Holders.ContainsKey(s.ClientEnd)).Take(5));
            Assert.True(refused == run.Held.Count(s => run.Holders[s.ClientEnd] == Drained), $"{run.Held.Count(s => run.Holders[s.ClientEnd] == Drained)} held by node 2; unheld:\n{unheld}\n{why}");
            Assert.True(inOne == run.Held.Count(s => run.Holders[s.ClientEnd] == 1), why);
            Assert.True(done - inOne == run.Sessions.Count - run.Held.Count, why);
            AssertHeldRunOnIntact(run, why);
        }
        finally
        {
            run.Dispose();
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task DrainMigrate_SendingProxyKilledMidRun_MovedSessionsKeepEveryByteTheOthersDieWithIt()
    {
        var run = await DrainAndKillAsync([1, 3], Drained, 7000);
        try
        {
            var movedIn = run.After.In[0] - run.Before.In[0] + run.After.In[2] - run.Before.In[2];
            var why = Report(run, $"nodes 1 and 3 had taken {run.MovedInAtKill} when node 2's proxy was killed, {movedIn} in all; "
                + $"node 2's l2bal counted {run.After.Done - run.Before.Done} moved, {run.After.Refused - run.Before.Refused} refused");

            // Sessions held after the kill are exactly those the survivors took in; the others died with node 2's proxy.
            Assert.True(movedIn > 0, why);
            Assert.Equal(movedIn, run.Held.Count);
            Assert.DoesNotContain(run.Holders.Values, k => k == Drained);
            AssertHeldRunOnIntact(run, why);
            // l2bal's run ended and counted every session (its proxy gone: refused, their flows moved away, never back).
            Assert.Equal(Sessions, run.After.Done - run.Before.Done + run.After.Refused - run.Before.Refused);
            // Nothing the dead proxy left mid-move stays in moved_out (docs/design.md#stale-moved_out-elements).
            Assert.True(run.After.MovedOutResolved > run.Before.MovedOutResolved, why);
            var left = await fixture.MovedOutElementsAsync(Drained);
            Assert.True(left.Count == 0, $"{left.Count} flows still in moved_out: {string.Join(", ", left.Take(5))}\n{why}");
        }
        finally
        {
            run.Dispose();
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Migrate_AfterNodeReturnsAndTakesItsBucketsBack_MovesItsClientsSessionsToIt()
    {
        var sources = await fixture.SourcesOfAsync(Drained);
        using var listener = fixture.ListenOnTarget(FewSessions);
        using var stop = new CancellationTokenSource();
        var sessions = new List<ClusterSession>();
        var clock = new PhaseClock();
        try
        {
            // Node 2 fails: its clients' sessions open on the covering nodes.
            Lab.Balancer(Drained)!.Kill(LabSignals.Kill);
            await fixture.KillProxyAsync(Drained);
            await fixture.WaitForStatusAsync([1, 3], s => s.Values.All(v => v.OwnedBy(Drained) == 0 && v.OwnedBy(0) == 0 && v.Owners.GetValueOrDefault("none") == 0), "nodes 1 and 3 cover node 2's buckets");
            await fixture.OpenSessionsAsync(sessions, sources, FewSessions, listener, 9000, stop.Token);
            clock.Mark("opened on 1 and 3");
            var covering = await fixture.HoldersAsync();
            Assert.True(sessions.All(s => covering.ContainsKey(s.ClientEnd) && covering[s.ClientEnd] != Drained), fixture.Describe());

            // Node 2 returns and takes its buckets back; the sessions run on where they are.
            fixture.StartBalancer(Drained);
            await fixture.StartProxyAsync(Drained);
            await fixture.WaitAllUpAsync();
            await fixture.WaitTakesMigrationsAsync(Drained);
            Assert.Equal(covering, await fixture.HoldersAsync());
            clock.Mark("node 2 back");

            var before = new[] { await fixture.CountsAsync(1), await fixture.CountsAsync(3) };
            var answers = new[] { await fixture.L2BalAsync(1, "migrate"), await fixture.L2BalAsync(3, "migrate") };
            var after = new[] { await fixture.CountsAsync(1), await fixture.CountsAsync(3) };
            await Task.Delay(TimeSpan.FromSeconds(1));
            var holders = await fixture.HoldersAsync();
            var stuck = await MigrationClusterFixture.FinishAsync(sessions, stop, Finish);
            var why = $"migrate on 1: {answers[0]}\nmigrate on 3: {answers[1]}\n{fixture.Describe()}";
            clock.Mark("migrated and finished");
            output.WriteLine($"l2bal migrate on nodes 1 and 3: {answers[0].StdOut.Trim()} | {answers[1].StdOut.Trim()}; {clock}");

            Assert.True(answers.All(a => a.Succeeded), why);
            Assert.Equal(FewSessions, after.Zip(before).Sum(p => p.First.Done - p.Second.Done));
            Assert.True(after.Zip(before).All(p => p.First.Refused == p.Second.Refused), why);
            Assert.Equal(FewSessions, after[1].In[Drained - 1] - before[0].In[Drained - 1]);
            LabAssert.All(sessions, s => holders.GetValueOrDefault(s.ClientEnd) == Drained, s => $"{s} held by node {holders.GetValueOrDefault(s.ClientEnd)}\n{why}");
            LabAssert.All(sessions, s => s.Intact && !stuck.Contains(s), s => $"{s}\n{why}");
        }
        finally
        {
            await stop.CancelAsync();
            sessions.ForEach(s => s.Session.Dispose());
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task RollingRestart_EachNodeDrainMigratedStoppedAndStarted_NoSessionCut()
    {
        using var listener = fixture.ListenOnTarget(FewSessions);
        using var stop = new CancellationTokenSource();
        var sessions = new List<ClusterSession>();
        var clock = new PhaseClock();
        try
        {
            await fixture.OpenSessionsAsync(sessions, Lab.ClientAddresses, FewSessions, listener, 11000, stop.Token);
            using var detector = await DuplicateAnswerDetector.StartAsync(Lab);
            var steps = new List<string>();
            for (var k = 1; k <= BalancerClusterFixtureBase.NodeCount; k++)
            {
                var before = await fixture.CountsAsync(k);
                var listed = (await fixture.ListAsync(k)).Count;
                var held = (await fixture.HoldersAsync()).Where(h => h.Value == k).Select(h => h.Key).ToList();
                var deletesBefore = await fixture.MigrationsSettledAsync(k);
                var drain = await fixture.L2BalAsync(k, "drain", "--migrate");
                var after = await fixture.CountsAsync(k);
                steps.Add(string.Create(CultureInfo.InvariantCulture, $"node {k}: {listed} listed, {after.Done - before.Done} moved, {after.Refused - before.Refused} refused ({drain.StdOut.Trim()})"));
                Assert.True(drain.Succeeded && after.Refused == before.Refused && after.Done - before.Done == listed, $"{string.Join('\n', steps)}\n{drain}\n{fixture.Describe()}");
                Assert.Empty(await fixture.ListAsync(k));
                // Right after the move: l2bal deleted each moved flow's entries through ctnetlink (its frames no longer reach conntrack here).
                var left = await fixture.MovedFlowsLeftInConntrackAsync(k, held);
                var deletesAfter = await fixture.MigrationsSettledAsync(k);
                long Delta(string name) => deletesAfter.GetProperty(name).GetInt64() - deletesBefore.GetProperty(name).GetInt64();
                Assert.True(held.Count > 0 && Delta("conntrackDeleted") >= held.Count && Delta("conntrackErrors") == 0,
                    $"node {k}: {held.Count} held, {Delta("conntrackDeleted")} deleted, {Delta("conntrackMissing")} missing, {Delta("conntrackErrors")} errors");
                steps[^1] += string.Create(CultureInfo.InvariantCulture, $"; conntrack {Delta("conntrackDeleted")} deleted, {Delta("conntrackMissing")} missing");
                Assert.True(left.Count == 0, $"node {k}: {left.Count} of {held.Count} moved flows still in conntrack:\n{string.Join('\n', left.Take(10))}\n{string.Join('\n', steps)}");
                clock.Mark($"node {k} drained");
                await fixture.RestartNodeAsync(k);
                clock.Mark($"node {k} back");
            }
            output.WriteLine(string.Join('\n', steps));

            await Task.Delay(TimeSpan.FromSeconds(1));
            var holders = await fixture.HoldersAsync();
            var stuck = await MigrationClusterFixture.FinishAsync(sessions, stop, Finish);
            var why = $"{string.Join('\n', steps)}\n{fixture.Describe()}";
            output.WriteLine(clock.ToString());
            var seen = await detector.StopAsync();
            Assert.True(seen.Resets.Count == 0, $"RSTs from the VIP to clients:\n{string.Join('\n', seen.Resets.Take(10).Select(r => r.Line))}\n{why}");
            LabAssert.All(sessions, s => holders.ContainsKey(s.ClientEnd), s => $"{s}: held by no node\n{why}");
            LabAssert.All(sessions, s => s.Intact && !stuck.Contains(s), s => $"{s}\n{why}");
        }
        finally
        {
            await stop.CancelAsync();
            sessions.ForEach(s => s.Session.Dispose());
        }
    }

    /// <summary>
    /// Opens <see cref="Sessions"/> checked sessions on node 2's buckets, slows the answers of
    /// <paramref name="receivers"/>, runs <c>drain --migrate</c> on node 2 and SIGKILLs node
    /// <paramref name="killed"/>'s l2proxy at the first session moved in; then which node holds each
    /// session, and the held ones finished (stopped, bounded).
    /// </summary>
    private async Task<KilledRun> DrainAndKillAsync(int[] receivers, int killed, int seed)
    {
        var run = new KilledRun(fixture.ListenOnTarget(Sessions));
        try
        {
            await fixture.OpenSessionsAsync(run.Sessions, await fixture.SourcesOfAsync(Drained), Sessions, run.Listener, seed, run.Stop.Token);
            run.Clock.Mark("opened");
            await Task.Delay(TimeSpan.FromMilliseconds(500));
            run.Before = await fixture.CountsAsync(Drained);
            foreach (var k in receivers)
            {
                await fixture.ThrottleMigrationAnswersAsync(k, on: true);
            }
            var drain = fixture.L2BalAsync(Drained, "drain", "--migrate");
            run.MovedInAtKill = await fixture.WaitFirstMoveInAsync(receivers, run.Before, drain);
            await fixture.KillProxyAsync(killed);
            run.Answer = await drain;
            run.Clock.Mark("drained");
            run.After = await fixture.CountsAsync(Drained);
            run.AppendCounters = await AppendCountersAsync();
            var received = run.Sessions.Select(s => s.Session.Up.Received + s.Session.Down.Received).ToList();
            await Task.Delay(TimeSpan.FromSeconds(1));
            run.Holders = await fixture.HoldersAsync();
            run.Clock.Mark("listed");
            run.Held = [.. run.Sessions.Where(s => run.Holders.ContainsKey(s.ClientEnd))];
            run.Silent = [.. run.Sessions.Where((s, i) => s.Session.Up.Received + s.Session.Down.Received == received[i])];
            // Only the held ones must end: the others died with a proxy (a frozen or silent copy closes without FIN or RST).
            run.Stuck = await MigrationClusterFixture.FinishAsync(run.Held, run.Stop, Finish);
            run.Clock.Mark("finished");
            return run;
        }
        catch
        {
            run.Dispose();
            throw;
        }
        finally
        {
            foreach (var k in receivers)
            {
                await fixture.ThrottleMigrationAnswersAsync(k, on: false);
            }
        }
    }

    /// <summary>Prints the figures with the phases; the diagnostics of an assertion.</summary>
    private string Report(KilledRun run, string figures)
    {
        output.WriteLine($"{figures}; {run.Clock}; receivers' appends: {run.AppendCounters}");
        return $"drain: {run.Answer}\n{figures}\nreceivers' appends (since the fixture started): {run.AppendCounters}\n{fixture.Describe()}";
    }

    /// <summary>
    /// What each running l2proxy appended to restored sockets (docs/design.md#the-pause): a wrong byte in a moved session
    /// with the right count is a byte the restored socket took twice, so these say which append could have put it there.
    /// </summary>
    private async Task<string> AppendCountersAsync()
    {
        (string Name, string Sample)[] counters =
        [
            ("captured", "l2proxy_migration_captured_bytes_total"),
            ("at Go", "l2proxy_migration_captured_at_go_bytes_total"),
            ("Go appends skipped", "l2proxy_migration_go_appends_skipped_total"),
            ("late segments", "l2proxy_migration_capture_late_segments_total"),
            ("acks failed", "l2proxy_migration_acks_total{result=\"failed\"}"),
        ];
        var nodes = new List<string>();
        for (var k = 1; k <= BalancerClusterFixtureBase.NodeCount; k++)
        {
            if (Lab.Proxy(k) is null or { HasExited: true })
            {
                nodes.Add($"node {k}: not running");
                continue;
            }
            var values = new List<string>();
            foreach (var (name, sample) in counters)
            {
                var value = await fixture.ProxyMetricAsync(k, sample);
                values.Add(string.Create(CultureInfo.InvariantCulture, $"{name} {value}"));
            }
            nodes.Add($"node {k}: {string.Join(", ", values)}");
        }
        return string.Join("; ", nodes);
    }

    /// <summary>Held sessions: every byte once and in order both ways, not cut, bytes still flowing after the run; no session anywhere got a wrong byte.</summary>
    private static void AssertHeldRunOnIntact(KilledRun run, string why)
    {
        LabAssert.All(run.Held, s => s.Intact && !run.Stuck.Contains(s), s => $"{s} (node {run.Holders[s.ClientEnd]})\n{why}");
        LabAssert.All(run.Held, s => !run.Silent.Contains(s), s => $"{s}: no byte after the run\n{why}");
        LabAssert.All(run.Sessions, s => s.NoWrongByte, s => $"{s}\n{why}");
    }
}

/// <summary>One drain of the kill tests: its sessions and what the run left.</summary>
internal sealed class KilledRun(Socket listener) : IDisposable
{
    public Socket Listener => listener;

    public CancellationTokenSource Stop { get; } = new();

    public PhaseClock Clock { get; } = new();

    public List<ClusterSession> Sessions { get; } = [];

    public MigrationCounts Before { get; set; } = null!;

    public MigrationCounts After { get; set; } = null!;

    public long MovedInAtKill { get; set; }

    public LabRunResult? Answer { get; set; }

    /// <summary>The running proxies' append counters right after the drain (<c>AppendCountersAsync</c>).</summary>
    public string AppendCounters { get; set; } = string.Empty;

    public Dictionary<IPEndPoint, int> Holders { get; set; } = [];

    public List<ClusterSession> Held { get; set; } = [];

    /// <summary>Sessions that received nothing in the second after the run.</summary>
    public List<ClusterSession> Silent { get; set; } = [];

    public List<ClusterSession> Stuck { get; set; } = [];

    public void Dispose()
    {
        Stop.Cancel();
        Sessions.ForEach(s => s.Session.Dispose());
        listener.Dispose();
        Stop.Dispose();
    }
}

/// <summary>Seconds since the test began at each named step: where a lab test spends its time (printed with its figures).</summary>
internal sealed class PhaseClock
{
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private readonly List<string> _marks = [];

    public void Mark(string step) => _marks.Add(string.Create(CultureInfo.InvariantCulture, $"{step} {_clock.Elapsed.TotalSeconds:F1} s"));

    public override string ToString() => string.Join(", ", _marks);
}
