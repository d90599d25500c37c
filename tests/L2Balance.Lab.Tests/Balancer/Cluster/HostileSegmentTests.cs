using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;
using L2Balance.Balancer.Protocol;
using L2Balance.Lab.Cluster;
using L2Balance.Tests.Common;
using Xunit;
using Xunit.Abstractions;

namespace L2Balance.Lab.Tests.Balancer.Cluster;

/// <summary>
/// Issue 14, adverts on a hostile segment: a host without the key floods bad-HMAC adverts and
/// replays captured ones (docs/design.md#advert-budget), nodes on two keys name the mismatch
/// (docs/design.md#key-rollover), a rolling key change and a v1 → v2 upgrade run under traffic
/// (docs/design.md#advert-v2). Facts from <c>status --json</c> counters, never from logs.
/// </summary>
[Collection(BalancerClusterGroup.Name)]
public sealed class HostileSegmentTests(BalancerClusterFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    private const int N = BalancerClusterFixtureBase.NodeCount;
    private static readonly int[] All = [1, 2, 3];
    private static readonly TimeSpan FloodTime = TimeSpan.FromSeconds(10);

    /// <summary>Bounds every flood in count as well as time: far above what one thread reaches in 10 s here.</summary>
    private const long FloodBound = 20_000_000;
    private static int _attackers;

    private ClusterLab Lab => fixture.Lab;

    public Task InitializeAsync() => fixture.RestoreAsync();

    public Task DisposeAsync() => fixture.RestoreAsync();

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Flood_BadHmacAdvertsForTenSeconds_NoLapseNoOwnershipChangeAndAdvertsOnTime()
    {
        using var attacker = JoinAttacker();
        var captured = Capture(attacker);
        // Node 1's advert with our key id (so each one costs the HMAC, the dearest rejection), its MAC tag
        // changed frame by frame, from the attacker's own Ethernet source.
        var frame = (byte[])captured.First(f => Source(f) == 1).Clone();
        SetSource(frame);
        var before = await StatusesAsync();
        var cpuBefore = CpuSeconds(1);
        var flood = await attacker.FloodAsync(i =>
        {
            BinaryPrimitives.WriteInt64BigEndian(frame.AsSpan(frame.Length - 8), i);
            return frame;
        }, FloodTime, FloodBound).WithTimeout(FloodTime + TimeSpan.FromSeconds(30));
        var cpu = CpuSeconds(1) - cpuBefore;
        var after = await StatusesAsync();

        var rejected = after[1].Rejected("BadHmac") - before[1].Rejected("BadHmac");
        var report = string.Create(CultureInfo.InvariantCulture,
            $"flood: {flood}; node 1 rejected {rejected} as BadHmac, kernel drops {Delta(before, after, 1, "advertKernelDrops")}, budget spent {Delta(before, after, 1, "advertBudgetSpent")} steps, CPU {cpu:0.00} s = {cpu / Math.Max(1, rejected) * 1e6:0.00} µs per rejected frame");
        output.WriteLine(report);
        AssertUndisturbed(before, after, report);
        Assert.True(rejected > flood.Frames / 2, $"node 1 saw too few of the flood's frames: {report}");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Replay_CapturedAdvertsForTenSeconds_NoLapseNoOwnershipChangeAndAdvertsOnTime()
    {
        using var attacker = JoinAttacker();
        var captured = Capture(attacker).Select(f =>
        {
            var copy = (byte[])f.Clone();
            SetSource(copy);
            return copy;
        }).ToArray();
        var before = await StatusesAsync();
        var flood = await attacker.FloodAsync(i => captured[i % captured.Length], FloodTime, FloodBound)
            .WithTimeout(FloodTime + TimeSpan.FromSeconds(30));
        var after = await StatusesAsync();
        var replayed = All.Sum(k => after[k].Rejected("Replayed") - before[k].Rejected("Replayed"));
        var report = $"replay: {flood}; rejected as Replayed on all nodes: {replayed}";
        output.WriteLine(report);
        AssertUndisturbed(before, after, report);
        Assert.True(replayed > flood.Frames / 2, $"the replays were not seen as such: {report}");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task KeyMismatch_OneNodeOnAnotherKey_IsNamedInEveryStatusWithinADeadTimeAndNoFlowIsAnsweredTwice()
    {
        const int Odd = 2;
        var otherKey = Lab.WriteKeyFile("other");
        var clusterId = KeyIdOf(Lab.KeyFile!);
        var otherId = KeyIdOf(otherKey);
        using var detector = await DuplicateAnswerDetector.StartAsync(Lab);
        var generator = new TrafficGenerator(Lab.Client, fixture.Traffic(TimeSpan.FromSeconds(6)));
        var running = generator.RunAsync();
        await LabWait.UntilAsync(() => generator.Live.ConnectsOk >= 30, running, "connects flowing", TimeSpan.FromSeconds(20));
        await StopBalancerAsync(Odd);
        Lab.StartBalancerWith(Odd, otherKey, N, [.. BalancerClusterFixtureBase.HealthArgs, .. fixture.BalancerArgs]);

        // Once the odd node has sent a dead time's worth of adverts (dead-after of them), every status names the other key.
        var deadAfter = int.Parse(fixture.BalancerArgs[Array.IndexOf(fixture.BalancerArgs, "--dead-after") + 1], CultureInfo.InvariantCulture);
        await fixture.WaitForStatusAsync([Odd], s => Counter(s[Odd], "advertsSent") >= deadAfter, "the odd node sent a dead time of adverts");
        var named = await fixture.WaitForStatusAsync(All, _ => true, "status", TimeSpan.FromSeconds(5));
        var results = await running.WithTimeout(TimeSpan.FromSeconds(60));
        var seen = await detector.StopAsync();
        var why = $"{results.Summary()}\n{seen.Summary()}\n{string.Join('\n', named.Values.Select(s => s.Json))}";
        output.WriteLine(why[..Math.Min(why.Length, 4000)]);
        Assert.Equal([otherId], ForeignKeyIds(named[1]));
        Assert.Equal([otherId], ForeignKeyIds(named[3]));
        Assert.Equal([clusterId], ForeignKeyIds(named[Odd]));
        Assert.Equal("unverified-key", named[Odd].Conflict);
        Assert.Equal(0, named[Odd].Held);
        seen.AssertSingleAnswers(fixture.Describe);
    }

    /// <summary>
    /// Key A to key B node by node under traffic: each restarted with B and A as previous, then each
    /// with B alone. No node ever rejects another's advert as signed with a key it lacks, and no
    /// SYN is answered twice; at the end every node signs with B.
    /// </summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task RollingKeyChange_UnderTraffic_EveryNodeVerifiesEveryAdvertAndNoFlowIsAnsweredTwice()
    {
        var keyA = Lab.KeyFile!;
        var keyB = Lab.WriteKeyFile("rolled");
        var stages = All.Select(k => (k, keyB, (string?)keyA)).Concat(All.Select(k => (k, keyB, (string?)null))).ToArray();
        await RunRollingAsync(stages.Select(s => (s.k, new Func<Task>(() => RestartWithKeysAsync(s.k, s.keyB, s.Item3)))).ToArray(),
            TimeSpan.FromSeconds(120), ["UnknownKey", "BadHmac"]);
        var end = await fixture.WaitForStatusAsync(All, s => s.Values.All(BalancerClusterFixtureBase.AllUp), "all up on key B");
        LabAssert.All(end.Values, s => Adverts(s).GetProperty("signingKeyId").GetString() == KeyIdOf(keyB), s => $"not signing with key B:\n{s.Json}");
    }

    /// <summary>
    /// A cluster pinned to advert version 1 (as a version-1 daemon sends and accepts, byte for byte:
    /// AdvertCodecTests.Advert_Written_HasTheDocumentedLayout) is upgraded node by node under traffic.
    /// The pinned nodes count the upgraded ones' version-2 copies as BadVersion, as a version-1 daemon
    /// does, and still hear their version-1 adverts; at the end every node sends version 2.
    /// </summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task UpgradeFromVersion1_NodeByNodeUnderTraffic_NoFlowIsAnsweredTwiceAndAllEndOnVersion2()
    {
        foreach (var k in All)
        {
            await StopBalancerAsync(k);
            Lab.StartBalancerWith(k, Lab.KeyFile!, N, [.. BalancerClusterFixtureBase.HealthArgs, .. fixture.BalancerArgs, "--advert-version", "1"]);
        }
        var pinned = await fixture.WaitForStatusAsync(All, s => s.Values.All(BalancerClusterFixtureBase.AllUp), "all up on version 1");
        LabAssert.All(pinned.Values, s => Adverts(s).GetProperty("version").GetInt32() == 1, s => $"not on version 1:\n{s.Json}");
        var badVersion = pinned.ToDictionary(p => p.Key, p => p.Value.Rejected("BadVersion"));

        await RunRollingAsync(All.Select(k => (k, new Func<Task>(() => RestartWithKeysAsync(k, Lab.KeyFile!, null)))).ToArray(),
            TimeSpan.FromSeconds(90), ["BadHmac", "UnknownKey"], (node, statuses) =>
            {
                if (node == 1)
                {
                    // Upgraded node 1 sends version 1 to its pinned peers (and a version-2 copy, which pinned node 3 refuses).
                    Assert.True(Adverts(statuses[1]).GetProperty("version").GetInt32() == 1, $"node 1 does not send version 1 to version-1 peers:\n{statuses[1].Json}");
                    Assert.True(statuses[3].Rejected("BadVersion") > badVersion[3], $"pinned node 3 did not refuse version 2:\n{statuses[3].Json}");
                }
            });
        var end = await fixture.WaitForStatusAsync(All, s => s.Values.All(v => BalancerClusterFixtureBase.AllUp(v) && Adverts(v).GetProperty("version").GetInt32() == 2),
            "all up on version 2");
        output.WriteLine(string.Join('\n', end.Values.Select(s => Adverts(s).GetRawText())));
    }

    /// <summary>
    /// Runs <paramref name="steps"/> one after the other under traffic, waiting after each until
    /// every node holds its share; every daemon's count of <paramref name="neverRejected"/> stays
    /// where it was (a restarted daemon's at 0), and no SYN is answered twice.
    /// </summary>
    private async Task RunRollingAsync((int Node, Func<Task> Restart)[] steps, TimeSpan duration, string[] neverRejected,
        Action<int, IReadOnlyDictionary<int, BalancerStatus>>? afterStep = null)
    {
        var baseline = (await StatusesAsync()).ToDictionary(s => s.Key, s => neverRejected.Sum(r => s.Value.Rejected(r)));
        using var detector = await DuplicateAnswerDetector.StartAsync(Lab);
        using var stop = new CancellationTokenSource();
        var generator = new TrafficGenerator(Lab.Client, fixture.Traffic(duration) with { Stop = stop.Token });
        var running = generator.RunAsync();
        await LabWait.UntilAsync(() => generator.Live.ConnectsOk >= 30, running, "connects flowing", TimeSpan.FromSeconds(20));
        var log = new List<string>();
        foreach (var (node, restart) in steps)
        {
            await restart();
            baseline[node] = 0;
            var statuses = await fixture.WaitForStatusAsync(All, s => s.Values.All(BalancerClusterFixtureBase.AllUp), $"all up after restarting node {node}");
            foreach (var (k, s) in statuses)
            {
                var rejected = neverRejected.Sum(r => s.Rejected(r));
                log.Add($"after node {node}: node {k} {Adverts(s).GetRawText()}");
                Assert.True(rejected == baseline[k], $"node {k} rejected {rejected - baseline[k]} adverts as {string.Join("/", neverRejected)} after node {node} restarted: two groups\n{string.Join('\n', log)}\n{s.Json}\n{fixture.Describe()}");
            }
            afterStep?.Invoke(node, statuses);
            Assert.False(running.IsCompleted, $"the traffic ended before the last step: lengthen it\n{string.Join('\n', log)}");
        }
        // A second more of traffic after the last step, then stop (the bound is only the ceiling).
        await Task.Delay(TimeSpan.FromSeconds(1));
        await stop.CancelAsync();
        var results = await running.WithTimeout(duration + TimeSpan.FromSeconds(60));
        var seen = await detector.StopAsync();
        output.WriteLine($"{results.Summary()}\n{seen.Summary()}\n{string.Join('\n', log)}");
        seen.AssertSingleAnswers(fixture.Describe);
    }

    private async Task RestartWithKeysAsync(int k, string keyFile, string? previousKeyFile)
    {
        await StopBalancerAsync(k);
        string[] previous = previousKeyFile is null ? [] : ["--previous-key-file", previousKeyFile];
        Lab.StartBalancerWith(k, keyFile, N, [.. BalancerClusterFixtureBase.HealthArgs, .. fixture.BalancerArgs, .. previous]);
    }

    private async Task StopBalancerAsync(int k)
    {
        var old = Lab.Balancer(k)!;
        old.Stop();
        Assert.True(await old.WaitForExitAsync(TimeSpan.FromSeconds(10)), $"l2bal {k} did not stop\n{fixture.Describe()}");
    }

    private SegmentAttacker JoinAttacker() => SegmentAttacker.Join(Lab, $"atk{Interlocked.Increment(ref _attackers)}");

    /// <summary>Thirty adverts of the nodes, as the attacker heard them (whole frames).</summary>
    private IReadOnlyList<byte[]> Capture(SegmentAttacker attacker)
    {
        var frames = attacker.Capture(30, TimeSpan.FromSeconds(10));
        Assert.True(frames.Count == 30 && frames.Any(f => Source(f) == 1), $"captured {frames.Count} adverts\n{fixture.Describe()}");
        return frames;
    }

    /// <summary>The node a frame's Ethernet source names (02:00:00:00:00:0k), or 0.</summary>
    private static int Source(byte[] frame) => frame.AsSpan(6, 5).SequenceEqual(new byte[] { 2, 0, 0, 0, 0 }) ? frame[11] : 0;

    private static void SetSource(byte[] frame) => Convert.FromHexString(SegmentAttacker.Mac.Replace(":", "", StringComparison.Ordinal)).CopyTo(frame, 6);

    private async Task<Dictionary<int, BalancerStatus>> StatusesAsync() =>
        new(await fixture.WaitForStatusAsync(All, _ => true, "status"));

    private void AssertUndisturbed(Dictionary<int, BalancerStatus> before, Dictionary<int, BalancerStatus> after, string report)
    {
        foreach (var k in All)
        {
            var what = $"node {k}: {report}\nbefore:\n{before[k].Json}\nafter:\n{after[k].Json}\n{fixture.Describe()}";
            Assert.True(Delta(before, after, k, "ownershipChanges") == 0, $"ownership changed on {what}");
            Assert.True(Delta(before, after, k, "leaseLapses") == 0, $"the lease lapsed on {what}");
            Assert.True(Delta(before, after, k, "advertsLate") == 0, $"an advert went out later than two intervals on {what}");
            Assert.True(after[k].Count("peer-dead") == before[k].Count("peer-dead"), $"a peer was declared dead on {what}");
            Assert.True(BalancerClusterFixtureBase.AllUp(after[k]), $"not all up on {what}");
        }
    }

    private static long Delta(Dictionary<int, BalancerStatus> before, Dictionary<int, BalancerStatus> after, int k, string counter) =>
        Counter(after[k], counter) - Counter(before[k], counter);

    private static long Counter(BalancerStatus s, string name)
    {
        using var doc = JsonDocument.Parse(s.Json);
        return (long)doc.RootElement.GetProperty("counters").GetProperty(name).GetDouble();
    }

    private static JsonElement Adverts(BalancerStatus s)
    {
        using var doc = JsonDocument.Parse(s.Json);
        return doc.RootElement.GetProperty("adverts").Clone();
    }

    private static string[] ForeignKeyIds(BalancerStatus s) =>
        [.. Adverts(s).GetProperty("foreignKeyIds").EnumerateArray().Select(f => f.GetProperty("keyId").GetString()!)];

    /// <summary>A key file's id as status prints it (the key is the file's text without surrounding white space).</summary>
    private static string KeyIdOf(string keyFile) =>
        AdvertKeys.Format(AdvertKeys.IdOf(System.Text.Encoding.ASCII.GetBytes(File.ReadAllText(keyFile).Trim())));

    /// <summary>CPU seconds (user + system) node k's l2bal has used: /proc/PID/stat fields 14 and 15, in clock ticks of 10 ms.</summary>
    private double CpuSeconds(int k)
    {
        var stat = File.ReadAllText($"/proc/{Lab.Balancer(k)!.Id}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }
}
