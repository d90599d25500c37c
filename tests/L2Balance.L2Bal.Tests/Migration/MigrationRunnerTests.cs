using System.Net;
using L2Balance.Balancer.Kernel;
using L2Balance.Balancer.Migration;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Migration;

public class MigrationRunnerTests
{
    /// <summary>A proxy double: answers each move from a script, records the order of calls (a prepare ahead runs on another thread).</summary>
    private sealed class ScriptedProxy(List<string> calls) : IMigrationProxy
    {
        private void Record(string call)
        {
            lock (calls)
            {
                calls.Add(call);
            }
        }

        public Func<IPEndPoint, IReadOnlyList<string>, IReadOnlyList<MoveOutcome>> OnMove { get; set; } =
            (_, ids) => [.. ids.Select(id => new MoveOutcome(id, true, 7, null))];

        public Func<IReadOnlyList<ProxySession>> OnList { get; set; } = () => [];

        public Func<IPEndPoint, IReadOnlyList<string>, IReadOnlyList<PrepareOutcome>> OnPrepare { get; set; } =
            (_, ids) => [.. ids.Select(id => new PrepareOutcome(id, null))];

        public IReadOnlyList<PrepareOutcome> Prepare(IPEndPoint peer, IReadOnlyList<string> ids)
        {
            Record($"prepare {peer} {string.Join(' ', ids)}");
            return OnPrepare(peer, ids);
        }

        public void Key(uint epoch, ReadOnlySpan<byte> channelKey) => Record($"key {epoch}");

        public void Accept(IPEndPoint at) => Record($"accept {at}");

        public IReadOnlyList<ProxySession> List()
        {
            Record("list");
            return OnList();
        }

        public IReadOnlyList<MoveOutcome> Move(IPEndPoint peer, IReadOnlyList<string> ids)
        {
            Record($"move {peer} {string.Join(' ', ids)}");
            return OnMove(peer, ids);
        }
    }

    private static readonly Dictionary<int, NodeAddresses> Peers = new()
    {
        [2] = new NodeAddresses(IPAddress.Parse("198.18.0.2"), null, 1081),
        [3] = new NodeAddresses(IPAddress.Parse("198.18.0.3"), null, 1081),
    };

    private static int OwnerOf(ProxySession s) => s.Client.Address.GetAddressBytes()[3] / 10;

    private static (List<string> Calls, ScriptedProxy Proxy, MigrationCounters Counters, MigrationRunner Runner) Setup(
        Action<IReadOnlyCollection<FlowTuple>, MovedFlowChange>? filter = null, TimeSpan? settle = null)
    {
        var calls = new List<string>();
        var proxy = new ScriptedProxy(calls);
        var counters = new MigrationCounters();
        filter ??= (flows, change) => calls.Add($"{change switch { MovedFlowChange.Moving => "out+", MovedFlowChange.Stayed => "out-", _ => "away" }} {string.Join(", ", flows.Select(f => f.NftElement()))}");
        return (calls, proxy, counters, new MigrationRunner(proxy, filter, counters, settle));
    }

    private static MigrationPlan Plan(params ProxySession[] sessions) => MigrationPlanner.Plan(sessions, 1, OwnerOf, Peers);

    [Fact]
    public void Run_EachBatch_PutsBothLegsInMovedOutBeforeItsMoveAndInMovedAwayAfter()
    {
        var (calls, _, counters, runner) = Setup();

        var summary = runner.Run(Plan(MigrationTestData.Session(1, 21), MigrationTestData.Session(2, 31)));

        // The second batch goes to another peer: its prepare runs while the first moves, after the first's drop, before its own.
        const string prepareAhead = "prepare 198.18.0.3:1081 s2";
        Assert.Equal(
        [
            "prepare 198.18.0.2:1081 s1",
            "out+ tcp . 198.18.1.21 . 40001 . 198.18.0.10 . 1080, tcp . 198.18.2.7 . 443 . 198.18.0.10 . 33001",
            "move 198.18.0.2:1081 s1",
            "away tcp . 198.18.1.21 . 40001 . 198.18.0.10 . 1080, tcp . 198.18.2.7 . 443 . 198.18.0.10 . 33001",
            "out+ tcp . 198.18.1.31 . 40002 . 198.18.0.10 . 1080, tcp . 198.18.2.7 . 443 . 198.18.0.10 . 33002",
            "move 198.18.0.3:1081 s2",
            "away tcp . 198.18.1.31 . 40002 . 198.18.0.10 . 1080, tcp . 198.18.2.7 . 443 . 198.18.0.10 . 33002",
        ], calls.Where(c => c != prepareAhead));
        Assert.InRange(calls.IndexOf(prepareAhead), 2, calls.FindIndex(c => c.StartsWith("out+ tcp . 198.18.1.31", StringComparison.Ordinal)) - 1);
        Assert.Equal(2, summary.Moved);
        Assert.Equal([7, 7], summary.PausesMs);
        Assert.Equal(2, counters.Done);
        Assert.Equal(0, counters.InProgress);
    }

    [Fact]
    public void Run_StayedSessions_LeaveMovedOutAgainAndAreCountedByReason()
    {
        var (calls, proxy, counters, runner) = Setup();
        proxy.OnMove = (_, ids) => [new MoveOutcome(ids[0], true, 3, null), new MoveOutcome(ids[1], false, 0, "restore-failed")];

        var summary = runner.Run(Plan(MigrationTestData.Session(1, 21), MigrationTestData.Session(2, 22), MigrationTestData.Session(3, 23, stays: "not-single-ip")));

        Assert.Equal("away tcp . 198.18.1.21 . 40001 . 198.18.0.10 . 1080, tcp . 198.18.2.7 . 443 . 198.18.0.10 . 33001", calls[^2]);
        Assert.Equal("out- tcp . 198.18.1.22 . 40002 . 198.18.0.10 . 1080, tcp . 198.18.2.7 . 443 . 198.18.0.10 . 33002", calls[^1]);
        Assert.Equal(1, summary.Moved);
        Assert.Equal(new Dictionary<string, int> { ["not-single-ip"] = 1, ["restore-failed"] = 1 }, summary.Refused);
        Assert.Equal(1, counters.Refused["restore-failed"]);
        Assert.Equal(1, counters.Refused["not-single-ip"]);
        Assert.Equal(1, counters.Done);
        Assert.Equal(0, counters.InProgress);
    }

    [Fact]
    public void Run_IdsTheProxyLeftUnansweredOrDidNotAskFor_StayAndForeignIdsAreIgnored()
    {
        var (calls, proxy, counters, runner) = Setup();
        proxy.OnMove = (_, ids) => [new MoveOutcome("s9", true, 1, null), new MoveOutcome(ids[0], true, 1, null), new MoveOutcome(ids[0], false, 0, "too-large")];

        var summary = runner.Run(Plan(MigrationTestData.Session(1, 21), MigrationTestData.Session(2, 22)));

        Assert.Equal(1, summary.Moved);
        Assert.Equal(new Dictionary<string, int> { ["proxy-failed"] = 1 }, summary.Refused);
        Assert.StartsWith("out- tcp . 198.18.1.22 ", calls[^1], StringComparison.Ordinal);
        Assert.Equal(0, counters.InProgress);
    }

    [Fact]
    public void Run_ProxyFailsMidMove_SessionsStillListedStayAndTheOthersMoved()
    {
        var (calls, proxy, counters, runner) = Setup();
        proxy.OnMove = (_, _) => throw new MigrationProxyException("connection reset");
        proxy.OnList = () => [MigrationTestData.Session(2, 22)];

        var summary = runner.Run(Plan(MigrationTestData.Session(1, 21), MigrationTestData.Session(2, 22)));

        Assert.Equal(1, summary.Moved);
        Assert.Equal(new Dictionary<string, int> { ["proxy-failed"] = 1 }, summary.Refused);
        Assert.Equal("list", calls[^3]);
        Assert.StartsWith("away tcp . 198.18.1.21 ", calls[^2], StringComparison.Ordinal);
        Assert.StartsWith("out- tcp . 198.18.1.22 ", calls[^1], StringComparison.Ordinal);
        Assert.Equal(1, counters.ProxyErrors);
    }

    [Fact]
    public void Run_ProxyFailsWhileSessionsArePaused_WaitsForTheirDecisionBeforeTakingFlowsOut()
    {
        var (calls, proxy, _, runner) = Setup(settle: TimeSpan.FromSeconds(5));
        proxy.OnMove = (_, _) => throw new MigrationProxyException("answer timed out");
        // First list: both paused (the proxy still decides); then 1 moved (gone) and 2 resumed (movable).
        var lists = 0;
        proxy.OnList = () => ++lists == 1
            ? [MigrationTestData.Session(1, 21, "not-established"), MigrationTestData.Session(2, 22, "not-established")]
            : [MigrationTestData.Session(2, 22)];

        var summary = runner.Run(Plan(MigrationTestData.Session(1, 21), MigrationTestData.Session(2, 22)));

        Assert.Equal(2, lists);
        Assert.Equal(1, summary.Moved);
        Assert.Equal(new Dictionary<string, int> { ["proxy-failed"] = 1 }, summary.Refused);
        Assert.StartsWith("away tcp . 198.18.1.21 ", calls[^2], StringComparison.Ordinal);
        Assert.StartsWith("out- tcp . 198.18.1.22 ", calls[^1], StringComparison.Ordinal);
    }

    [Fact]
    public void Run_ProxyKeepsSessionsPausedPastTheBound_CountsThemStayedAndTakesTheirFlowsOut()
    {
        var (calls, proxy, counters, runner) = Setup(settle: TimeSpan.FromMilliseconds(300));
        proxy.OnMove = (_, _) => throw new MigrationProxyException("answer timed out");
        proxy.OnList = () => [MigrationTestData.Session(1, 21, "not-established")];

        var summary = runner.Run(Plan(MigrationTestData.Session(1, 21)));

        Assert.InRange(calls.Count(c => c == "list"), 2, 20);
        Assert.Equal(0, summary.Moved);
        Assert.Equal(new Dictionary<string, int> { ["proxy-failed"] = 1 }, summary.Refused);
        Assert.StartsWith("out- tcp . 198.18.1.21 ", calls[^1], StringComparison.Ordinal);
        Assert.Equal(0, counters.InProgress);
    }

    [Fact]
    public void Run_ProxyGoneEntirely_PutsTheFlowsMovedAwayNeverBackAndRefusesTheBatch()
    {
        var (calls, proxy, counters, runner) = Setup();
        proxy.OnMove = (_, _) => throw new MigrationProxyException("connection refused");
        proxy.OnList = () => throw new MigrationProxyException("connection refused");

        var summary = runner.Run(Plan(MigrationTestData.Session(1, 21)));

        Assert.Equal(0, summary.Moved);
        Assert.Equal(new Dictionary<string, int> { ["proxy-failed"] = 1 }, summary.Refused);
        // Moved or died with the proxy: out of moved_out, never taken back here.
        Assert.StartsWith("away tcp . 198.18.1.21 ", calls[^1], StringComparison.Ordinal);
        Assert.DoesNotContain(calls, c => c.StartsWith("out-", StringComparison.Ordinal));
        Assert.Equal(2, counters.ProxyErrors);
        Assert.Equal(1, counters.MovedOutResolved);
        Assert.Equal(0, counters.InProgress);
    }

    [Fact]
    public void Run_KernelRefusesATakeOutOnce_TriesAgainAndLeavesNothing()
    {
        var calls = new List<string>();
        int refusals = 0;
        var (_, proxy, counters, _) = Setup();
        proxy.OnMove = (_, ids) => [new MoveOutcome(ids[0], false, 0, "restore-failed")];
        var runner = new MigrationRunner(proxy, (flows, change) =>
        {
            calls.Add(change.ToString());
            if (change == MovedFlowChange.Stayed && refusals++ == 0)
            {
                throw new KernelFilterException("transaction refused");
            }
        }, counters);

        runner.Run(Plan(MigrationTestData.Session(1, 21)));

        Assert.Equal(["Moving", "Stayed", "Stayed"], calls);
        Assert.Equal(0, counters.MovedOutLeft);
        Assert.Equal(0, counters.MovedOutResolved);
    }

    [Fact]
    public void Run_KernelRefusesATakeOutTwice_CountsTheSessionsLeftToTheTimeout()
    {
        var (_, proxy, counters, _) = Setup();
        var runner = new MigrationRunner(proxy, (_, change) =>
        {
            if (change == MovedFlowChange.Moved)
            {
                throw new KernelFilterException("transaction refused");
            }
        }, counters);

        var summary = runner.Run(Plan(MigrationTestData.Session(1, 21), MigrationTestData.Session(2, 21)));

        Assert.Equal(2, summary.Moved);
        Assert.Equal(2, counters.MovedOutLeft);
        Assert.Equal(0, counters.InProgress);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Run_UnexpectedErrorMidBatch_AListDecidesOrAllMoveAwayAndNoFlowStaysMovedOut(bool lists)
    {
        var (calls, proxy, counters, runner) = Setup();
        proxy.OnMove = (_, _) => throw new InvalidOperationException("a bug");
        proxy.OnList = () => lists ? [MigrationTestData.Session(2, 22)] : throw new InvalidOperationException("still a bug");

        Assert.Throws<InvalidOperationException>(() => runner.Run(Plan(MigrationTestData.Session(1, 21), MigrationTestData.Session(2, 22))));

        // Listed: back (out-); not listed, or no list at all: moved away, never back here.
        var s1 = "tcp . 198.18.1.21 . 40001 . 198.18.0.10 . 1080, tcp . 198.18.2.7 . 443 . 198.18.0.10 . 33001";
        var s2 = "tcp . 198.18.1.22 . 40002 . 198.18.0.10 . 1080, tcp . 198.18.2.7 . 443 . 198.18.0.10 . 33002";
        Assert.Equal(lists ? ["away " + s1, "out- " + s2] : ["away " + s1 + ", " + s2], calls.Where(c => c.StartsWith("away", StringComparison.Ordinal) || c.StartsWith("out-", StringComparison.Ordinal)));
        Assert.Equal(2, counters.MovedOutResolved);
        Assert.Equal(lists ? 1 : 0, counters.Done);
        Assert.Equal(lists ? 1 : 2, counters.Refused["proxy-failed"]);
        Assert.Equal(0, counters.InProgress);
    }

    [Fact]
    public void Run_FilterRefusesTheMovedOutSet_NothingOfTheBatchIsAskedToMove()
    {
        var (calls, proxy, counters, _) = Setup();
        var runner = new MigrationRunner(proxy, (_, _) => throw new KernelFilterException("set full"), counters);

        var summary = runner.Run(Plan(MigrationTestData.Session(1, 21), MigrationTestData.Session(2, 22)));

        Assert.Equal(0, summary.Moved);
        Assert.Equal(new Dictionary<string, int> { ["filter-failed"] = 2 }, summary.Refused);
        Assert.Equal(2, counters.Refused["filter-failed"]);
        Assert.DoesNotContain(calls, c => c.StartsWith("move", StringComparison.Ordinal));
    }

    [Fact]
    public void Run_PrepareAnswersStayed_ThatSessionIsRefusedAndNeverDroppedOrMoved()
    {
        var (calls, proxy, counters, runner) = Setup();
        proxy.OnPrepare = (_, ids) => [new PrepareOutcome("s1", "not-established"), new PrepareOutcome("s2", null)];

        var summary = runner.Run(Plan(MigrationTestData.Session(1, 21), MigrationTestData.Session(2, 22)));

        Assert.Equal(
        [
            "prepare 198.18.0.2:1081 s1 s2",
            "out+ tcp . 198.18.1.22 . 40002 . 198.18.0.10 . 1080, tcp . 198.18.2.7 . 443 . 198.18.0.10 . 33002",
            "move 198.18.0.2:1081 s2",
            "away tcp . 198.18.1.22 . 40002 . 198.18.0.10 . 1080, tcp . 198.18.2.7 . 443 . 198.18.0.10 . 33002",
        ], calls);
        Assert.Equal(1, summary.Moved);
        Assert.Equal(new Dictionary<string, int> { ["not-established"] = 1 }, summary.Refused);
        Assert.Equal(1, counters.Refused["not-established"]);
        Assert.Equal(0, counters.InProgress);
    }

    [Fact]
    public void Run_PrepareFailsAsWithAnOlderProxy_TheBatchMovesAsBeforeAndTheErrorIsCounted()
    {
        var (calls, proxy, counters, runner) = Setup();
        proxy.OnPrepare = (_, _) => throw new MigrationProxyException("l2proxy: unknown request");

        var summary = runner.Run(Plan(MigrationTestData.Session(1, 21)));

        Assert.Equal(["prepare 198.18.0.2:1081 s1", "out+", "move 198.18.0.2:1081 s1", "away"], calls.Select(c => c.StartsWith("out+", StringComparison.Ordinal) || c.StartsWith("away", StringComparison.Ordinal) ? c[..4] : c));
        Assert.Equal(1, summary.Moved);
        Assert.Equal(1, counters.ProxyErrors);
    }

    [Fact]
    public void Summary_WithPauses_NamesMedianAndMax()
    {
        var summary = new MigrationSummary(3, new Dictionary<string, int> { ["workers"] = 2 }, 4, [5, 1, 30]);

        Assert.Equal("moved 3, refused 2 (workers: 2), 4 owned here; pause median 5 ms, max 30 ms", summary.ToString());
    }

    [Fact]
    public void Summary_WithDropWindows_NamesTheirMedianAndMaxToo()
    {
        var summary = new MigrationSummary(3, new Dictionary<string, int>(), 0, [5, 1, 30], [40, 12, 90]);

        Assert.Equal("moved 3, none refused, 0 owned here; pause median 5 ms, max 30 ms; dropped until answered median 40 ms, max 90 ms", summary.ToString());
    }

    [Fact]
    public void Summary_WithPhases_NamesWhereTheTimeWent()
    {
        var phases = new MigrationPhases { Batches = 2, PrepareMs = 10.4, DropMs = 3, MoveMs = 80.6, SettleMs = 4 };
        var summary = new MigrationSummary(3, new Dictionary<string, int>(), 0, [5], [40], phases);

        Assert.EndsWith("; 2 batches: prepare 10 ms, drop 3 ms, move 81 ms, settle 4 ms", summary.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Run_CountsEachBatchOnce_InItsPhases()
    {
        var (_, _, _, runner) = Setup();

        var summary = runner.Run(Plan(MigrationTestData.Session(1, 21), MigrationTestData.Session(2, 22), MigrationTestData.Session(3, 31)));

        Assert.Equal(2, summary.Phases!.Batches); // two owners, 2 and 3: one batch each
        Assert.True(summary.Phases.MoveMs >= 0 && summary.Phases.PrepareMs >= 0);
    }

    [Fact]
    public void Run_NextBatchToTheSamePeer_IsPreparedOnlyAfterThisOneMoved()
    {
        var (calls, _, _, runner) = Setup();
        var sessions = Enumerable.Range(1, MigrationPlanner.BatchLimit + 1).Select(n => MigrationTestData.Session(n, 21)).ToArray();

        var summary = runner.Run(Plan(sessions));

        // One peer: its channel carries the first batch's move, so the second batch's prepare waits for it.
        Assert.Equal(["prepare", "out+", "move", "away", "prepare", "out+", "move", "away"], calls.Select(c => c.Split(' ')[0]));
        Assert.Equal(MigrationPlanner.BatchLimit + 1, summary.Moved);
    }
}
