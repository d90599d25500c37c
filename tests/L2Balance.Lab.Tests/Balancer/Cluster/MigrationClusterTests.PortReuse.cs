using System.Globalization;
using System.Net;
using L2Balance.Lab.Cluster;
using L2Balance.Lab.Tests.Balancer.Control;
using L2Balance.Lab.Tests.Balancer.Kernel;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Balancer.Cluster;

/// <summary>
/// A moved session's tuple on the node it left (docs/design.md#migration-filter): a forged SYN on the live tuple cuts
/// nothing, and once the session ended a new connection from the same source address and port is served once, by the
/// bucket's owner, also when that owner is the node the session left.
/// </summary>
public partial class MigrationClusterTests
{
    /// <summary>The source port of the reused tuple; unique in the collection (seeds of the other tests: 3000-3600, 5000-11600).</summary>
    private const int ReusedPort = 13001;

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task DrainMigrate_SourcePortOfAMovedSession_ForgedSynCutsNothingAndANewConnectionIsServedOnceByTheOwnerAfterTheHandBack()
    {
        var source = (await fixture.SourcesOfAsync(Drained))[0];
        using var listener = fixture.ListenOnTarget(4);
        using var stop = new CancellationTokenSource();
        var moved = await fixture.OpenSessionAsync(source, listener, ReusedPort, stop.Token);
        ClusterSession? again = null;
        using var stopAgain = new CancellationTokenSource();
        try
        {
            var before = await fixture.CountsAsync(Drained);
            var drain = await fixture.L2BalAsync(Drained, "drain", "--migrate");
            var migrations = await MigrateControlTests.MigrationsWhenAsync(Lab, Drained,
                m => m.GetProperty("inProgress").GetInt64() == 0 && m.GetProperty("done").GetInt64() > before.Done);
            var holder = (await fixture.HoldersAsync())[moved.ClientEnd];
            var why = $"drain: {drain}\nmigrations: {migrations}\n{fixture.Describe()}";
            Assert.True(holder != Drained, why);

            // A forged bare SYN on the live moved tuple: no SYN-ACK and no RST from any node, the session's bytes keep flowing.
            SeenAnswers forged;
            using (var detector = await DuplicateAnswerDetector.StartAsync(Lab))
            {
                var received = moved.Session.Down.Received;
                ForgedSyn.Send(Lab.Client, moved.ClientEnd, Lab.ProxyEndPoint);
                await Task.Delay(TimeSpan.FromSeconds(1.5));
                forged = new SeenAnswers(await detector.StopAsync(), moved.ClientEnd);
                Assert.True(moved.Session.Down.Received > received && moved.Session.Down.Error is null && moved.Session.Up.Error is null, $"{moved}\n{why}");
            }
            Assert.True(forged.SynAcks.Count == 0 && forged.Resets.Count == 0, $"{forged}\n{why}");
            Assert.True(moved.NoWrongByte, $"{moved}\n{why}");

            // The session ends (the client resets it: no TIME_WAIT keeps the port), node 2 takes its buckets back.
            moved.Session.AbortClient();
            var undrain = await fixture.L2BalAsync(Drained, "undrain");
            Assert.True(undrain.Succeeded, undrain.ToString());
            await fixture.WaitAllUpAsync();
            Assert.Equal(Drained, await fixture.OwnerAsync(1, source));
            var stale = await fixture.MovedFlowsLeftInConntrackAsync(Drained, [moved.ClientEnd]);
            output.WriteLine($"node 2's conntrack entry of the moved tuple before the reuse: {(stale.Count == 0 ? "none (deleted at the move)" : stale[0])}");
            var accepted = (await fixture.StatusAsync(Drained)).Kernel("acceptedNew");

            // The same source address and port again: node 2 (the owner) serves it, once.
            SeenAnswers reuse;
            using (var detector = await DuplicateAnswerDetector.StartAsync(Lab))
            {
                again = await fixture.OpenSessionAsync(source, listener, ReusedPort, stopAgain.Token);
                await Task.Delay(TimeSpan.FromSeconds(1));
                reuse = new SeenAnswers(await detector.StopAsync(), moved.ClientEnd);
            }
            var holders = await fixture.HoldersAsync();
            var stuck = await MigrationClusterFixture.FinishAsync([again], stopAgain, TimeSpan.FromSeconds(15));

            Assert.True(holders.GetValueOrDefault(again.ClientEnd) == Drained, $"held by node {holders.GetValueOrDefault(again.ClientEnd)}\n{why}");
            Assert.True(reuse.SynAcks.Count >= 1 && reuse.SynAcks.All(a => a.SourceMac == ClusterLab.NodeMac(Drained)) && reuse.Resets.Count == 0, $"{reuse}\n{why}");
            Assert.True((await fixture.StatusAsync(Drained)).Kernel("acceptedNew") > accepted, why);
            Assert.True(stuck.Count == 0 && again.Intact, $"{again}\n{why}");
        }
        finally
        {
            await stop.CancelAsync();
            moved.Session.Dispose();
            again?.Session.Dispose();
        }
    }

    /// <summary>The SYN-ACKs and RSTs from the VIP to one client end that a detector saw.</summary>
    private sealed record SeenAnswers(IReadOnlyList<CapturedAnswer> SynAcks, IReadOnlyList<CapturedAnswer> Resets)
    {
        public SeenAnswers(DetectorReport report, IPEndPoint end)
            : this([.. report.SynAcks.Where(a => Is(a, end))], [.. report.Resets.Where(a => Is(a, end))])
        {
        }

        private static bool Is(CapturedAnswer a, IPEndPoint end) => a.Client == end.Address.ToString() && a.ClientPort == end.Port;

        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"{SynAcks.Count} SYN-ACKs, {Resets.Count} RSTs to the tuple: {string.Join(" | ", SynAcks.Concat(Resets).Select(a => a.Line))}");
    }
}
