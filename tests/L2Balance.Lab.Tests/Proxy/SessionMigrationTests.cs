using System.Diagnostics;
using System.Globalization;
using L2Balance.Tests.Common;
using Xunit;
using Xunit.Abstractions;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>
/// Sessions move between two nodes' l2proxy through the migration control socket (issue 19): the test
/// plays l2bal's part per batch (drop both legs' 5-tuples on the old node, then <c>move</c>, then take
/// the tuples of sessions that stayed out of the drop again), as docs/design.md#live-migration-design pins it.
/// </summary>
public sealed class SessionMigrationTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Finish = TimeSpan.FromSeconds(30);

    /// <summary>Sessions opened until this count or <see cref="OpenFor"/>, whichever comes first (each opened and checked one by one).</summary>
    private const int Sessions = 300;

    /// <summary>Sessions per <c>move</c>: l2bal drops and moves in batches, so a flow's drop-to-restore window stays short.</summary>
    private const int Batch = 25;

    private static readonly TimeSpan OpenFor = TimeSpan.FromSeconds(40);

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Sessions_MovedThroughTheControlSocket_ContinueOnBEveryByteOnceInOrder()
    {
        using var lab = await StartLabAsync();
        using var stop = new CancellationTokenSource();
        var sessions = new List<LabSession>();
        try
        {
            var opening = Stopwatch.StartNew();
            while (sessions.Count < Sessions && opening.Elapsed < OpenFor)
            {
                sessions.Add(await lab.OpenProxiedSessionAsync(1000 + (2 * sessions.Count), new StreamPace(1024, TimeSpan.FromMilliseconds(20)), stop.Token));
            }

            await Task.Delay(TimeSpan.FromSeconds(1));
            var listed = (await MigrationLab.ControlAsync(lab.NodeA, "list")).SkipLast(1).Select(ListedSession.Parse).ToList();
            Assert.True(listed.Count == sessions.Count && listed.All(s => s.State == "movable" && s.Kind == "connect"),
                $"A lists {listed.Count} sessions of {sessions.Count}, states {string.Join(",", listed.Select(s => s.State).Distinct())}");

            var before = sessions.Select(s => s.LongestPause).ToList();
            sessions.ForEach(s => s.ResetLongestPause());
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var started = Stopwatch.StartNew();
            var answers = new List<string>();
            var (drops, moves) = (TimeSpan.Zero, TimeSpan.Zero);
            foreach (var batch in listed.Chunk(Batch))
            {
                var (answer, drop, move) = await MoveAsync(lab, batch);
                answers.AddRange(answer);
                (drops, moves) = (drops + drop, moves + move);
            }

            var emptied = started.Elapsed;
            cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
            await Task.Delay(TimeSpan.FromSeconds(2));
            await stop.CancelAsync();
            await Task.WhenAll(sessions.Select(s => s.CompletionAsync())).WithTimeout(Finish);

            var moved = answers.Where(a => a.StartsWith("moved ", StringComparison.Ordinal)).ToList();
            Assert.True(moved.Count == sessions.Count, $"{moved.Count} of {sessions.Count} moved: {string.Join("; ", answers.Except(moved).Take(5))}\n{lab.Describe()}");
            var broken = sessions.Where(s => !(s.Up.Intact && s.Down.Intact)).Select(s => s.Describe()).ToList();
            Assert.True(broken.Count == 0, $"{broken.Count} sessions broken:\n{string.Join('\n', broken.Take(5))}");
            Assert.Equal(["end"], await MigrationLab.ControlAsync(lab.NodeA, "list"));
            Assert.Equal(0, await lab.MetricAsync(MigrationLab.NodeAAddress, "l2proxy_sessions_active"));
            Assert.Equal(sessions.Count, await lab.MetricAsync(MigrationLab.NodeAAddress, "l2proxy_migrations_total{direction=\"out\"}"));
            Assert.Equal(sessions.Count, await lab.MetricAsync(MigrationLab.NodeBAddress, "l2proxy_migrations_total{direction=\"in\"}"));

            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{sessions.Count} sessions (1 KiB each way every 20 ms) in batches of {Batch}: node emptied in {emptied.TotalMilliseconds:F0} ms (drops {drops.TotalMilliseconds:F0} ms, moves {moves.TotalMilliseconds:F0} ms); CPU of the test process (streams, nft, control) {cpu.TotalMilliseconds:F0} ms"));
            output.WriteLine(MigrationPrimitiveTests.Figures("longest gap between arrivals before the move (the baseline)", before));
            output.WriteLine(MigrationPrimitiveTests.Figures("pause l2proxy reports (pause request to Go)", [.. moved.Select(a => TimeSpan.FromMilliseconds(double.Parse(a.Split(' ')[2], CultureInfo.InvariantCulture)))]));
            output.WriteLine(MigrationPrimitiveTests.Figures("pause seen by the ends (longest gap between arrivals)", [.. sessions.Select(s => s.LongestPause)]));
        }
        finally
        {
            await stop.CancelAsync();
            sessions.ForEach(s => s.Dispose());
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Restore_FailingOnB_LeavesTheSessionsRunningOnA()
    {
        using var lab = await StartLabAsync();
        using var stop = new CancellationTokenSource();
        var sessions = new List<LabSession>();
        try
        {
            for (int i = 0; i < 5; i++)
            {
                sessions.Add(await lab.OpenProxiedSessionAsync(50 + (2 * i), new StreamPace(16 * 1024, TimeSpan.FromMilliseconds(5)), stop.Token));
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500));
            lab.RemoveServiceFromB();
            var listed = (await MigrationLab.ControlAsync(lab.NodeA, "list")).SkipLast(1).Select(ListedSession.Parse).ToList();
            var (answers, _, _) = await MoveAsync(lab, listed);
            long upAtResume = sessions.Sum(s => s.Up.Received);
            long downAtResume = sessions.Sum(s => s.Down.Received);
            await Task.Delay(TimeSpan.FromSeconds(1));
            await stop.CancelAsync();
            await Task.WhenAll(sessions.Select(s => s.CompletionAsync())).WithTimeout(Finish);

            Assert.All(answers, a => Assert.Matches("^stayed [0-9]+ restore-failed$", a));
            Assert.Equal(sessions.Count, await lab.MetricAsync(MigrationLab.NodeAAddress, "l2proxy_migrations_refused_total{reason=\"restore-failed\"}"));
            Assert.Equal(0, await lab.MetricAsync(MigrationLab.NodeAAddress, "l2proxy_migrations_total"));
            var broken = sessions.Where(s => !(s.Up.Intact && s.Down.Intact)).Select(s => s.Describe()).ToList();
            Assert.True(broken.Count == 0, $"{broken.Count} sessions broken:\n{string.Join('\n', broken)}");
            Assert.True(sessions.Sum(s => s.Up.Received) > upAtResume && sessions.Sum(s => s.Down.Received) > downAtResume, "no bytes after the sessions resumed on A");
        }
        finally
        {
            await stop.CancelAsync();
            sessions.ForEach(s => s.Dispose());
        }
    }

    [SkippableTheory(typeof(LabUnavailableException))]
    [InlineData(FaultyPeer.RefuseThenBreak)]
    [InlineData(FaultyPeer.Silent)]
    public async Task Move_PeerFailsPartWay_EveryPausedSessionResumesOnAEveryByte(FaultyPeer behaviour)
    {
        const int count = 8;
        using var lab = await StartLabAsync();
        using var stop = new CancellationTokenSource();
        var sessions = new List<LabSession>();
        try
        {
            for (int i = 0; i < count; i++)
            {
                sessions.Add(await lab.OpenProxiedSessionAsync(70 + (2 * i), new StreamPace(4 * 1024, TimeSpan.FromMilliseconds(5)), stop.Token));
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500));
            var listed = (await MigrationLab.ControlAsync(lab.NodeA, "list")).SkipLast(1).Select(ListedSession.Parse).ToList();
            Assert.Equal(count, listed.Count);
            var peer = lab.ServeFaultyPeerAsync(behaviour, breakAfter: 4);
            await lab.DropMovedOutAsync(listed);
            var started = Stopwatch.StartNew();
            var answer = await MigrationLab.ControlAsync(lab.NodeA, $"move {MigrationLab.NodeBAddress}:{MigrationLab.FaultyPeerPort} {string.Join(' ', listed.Select(s => s.Id))}");
            var answered = started.Elapsed;
            await lab.KeepOnAAsync(listed);
            var states = await peer.WithTimeout(Finish);
            long upAtResume = sessions.Sum(s => s.Up.Received);
            long downAtResume = sessions.Sum(s => s.Down.Received);
            await Task.Delay(TimeSpan.FromSeconds(1));
            var relisted = (await MigrationLab.ControlAsync(lab.NodeA, "list")).SkipLast(1).Select(ListedSession.Parse).ToList();
            await stop.CancelAsync();
            await Task.WhenAll(sessions.Select(s => s.CompletionAsync())).WithTimeout(Finish);
            var why = $"{behaviour}: move answered in {answered.TotalMilliseconds:F0} ms: {string.Join(" | ", answer)}; the peer read {states} states\n{lab.Describe()}";

            // Every session stayed, each with its reason; none moved; the answer came within l2proxy's own bounds.
            Assert.True(answer.Length == count + 1 && answer[^1] == "end", why);
            var reasons = answer[..^1].Select(a => a.Split(' ')).ToList();
            Assert.True(reasons.All(w => w.Length == 3 && w[0] == "stayed"), why);
            var refusedByPeer = behaviour == FaultyPeer.RefuseThenBreak ? 1 : 0;
            Assert.Equal(refusedByPeer, reasons.Count(w => w[2] == "restore-failed"));
            Assert.Equal(count - refusedByPeer, reasons.Count(w => w[2] == "peer-unreachable"));
            Assert.True(answered < TimeSpan.FromSeconds(10), why);
            Assert.Equal(0, await lab.MetricAsync(MigrationLab.NodeAAddress, "l2proxy_migrations_total"));
            Assert.Equal(count, await lab.MetricAsync(MigrationLab.NodeAAddress, "l2proxy_migrations_refused_total"));

            // A holds every session again, movable; every byte once and in order both ways, none reset, and bytes flow after the resume.
            Assert.True(relisted.Count == count && relisted.All(s => s.State == "movable"), why);
            var broken = sessions.Where(s => !(s.Up.Intact && s.Down.Intact)).Select(s => s.Describe()).ToList();
            Assert.True(broken.Count == 0, $"{broken.Count} sessions broken:\n{string.Join('\n', broken)}\n{why}");
            Assert.True(sessions.Sum(s => s.Up.Received) > upAtResume && sessions.Sum(s => s.Down.Received) > downAtResume, $"no bytes after the sessions resumed on A\n{why}");
        }
        finally
        {
            await stop.CancelAsync();
            sessions.ForEach(s => s.Dispose());
        }
    }

    /// <summary>The lab with l2proxy on A and B, keyed and accepting; skipped unless l2proxy is under test.</summary>
    private static async Task<MigrationLab> StartLabAsync()
    {
        ProxyUnderTest.SkipUnlessL2Proxy("live migration");
        var lab = new MigrationLab(relayInProcess: false);
        try
        {
            await lab.StartProxiesAsync();
            return lab;
        }
        catch
        {
            lab.Dispose();
            throw;
        }
    }

    /// <summary>l2bal's part for one batch: drop both legs on A, move, keep the ones that stayed.</summary>
    private static async Task<(IReadOnlyList<string> Answers, TimeSpan Drop, TimeSpan Move)> MoveAsync(MigrationLab lab, IReadOnlyList<ListedSession> batch)
    {
        var started = Stopwatch.GetTimestamp();
        await lab.DropMovedOutAsync(batch);
        var dropped = Stopwatch.GetTimestamp();
        var answer = await MigrationLab.ControlAsync(lab.NodeA,
            $"move {MigrationLab.NodeBAddress}:{MigrationLab.ChannelPortOfProxies} {string.Join(' ', batch.Select(s => s.Id))}");
        Assert.True(answer.Length == batch.Count + 1 && answer[^1] == "end", $"move answered: {string.Join(" | ", answer)}");
        var stayed = answer.Where(a => a.StartsWith("stayed ", StringComparison.Ordinal)).Select(a => long.Parse(a.Split(' ')[1], CultureInfo.InvariantCulture)).ToHashSet();
        var moved = Stopwatch.GetTimestamp();
        await lab.KeepOnAAsync(batch.Where(s => stayed.Contains(s.Id)));
        return (answer[..^1], Stopwatch.GetElapsedTime(started, dropped), Stopwatch.GetElapsedTime(dropped, moved));
    }
}
