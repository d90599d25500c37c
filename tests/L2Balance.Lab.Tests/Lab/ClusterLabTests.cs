using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using L2Balance.Lab.Cluster;
using L2Balance.Tests.Common;
using Xunit;
using Xunit.Abstractions;

namespace L2Balance.Lab.Tests.Lab;

/// <summary>
/// The cluster lab and its traffic generator, checked before l2bal exists: routing through the
/// router, the fault helpers, and a static VIP on node 1 with l2proxy, where every client must be
/// served by node 1 and killing the proxy must show up as failures.
/// </summary>
[Collection(ClusterLabGroup.Name)]
public sealed class ClusterLabTests(ClusterLabFixture fixture, ITestOutputHelper output)
{
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(5);
    private ClusterLab Lab => fixture.Lab;

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Router_ClientsAndNodes_AreForwardedWithoutNat()
    {
        for (var k = 1; k <= ClusterLabFixture.NodeCount; k++)
        {
            var nodeAddress = ClusterLab.NodeAddress(k);
            using var listener = Lab.Nodes[k - 1].OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(nodeAddress, 9100));
            listener.Listen();

            var source = Lab.ClientAddresses[k * 7];
            using var client = Lab.Client.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            client.Bind(new IPEndPoint(source, 0));
            await client.ConnectAsync(new IPEndPoint(nodeAddress, 9100)).WithTimeout(Step);
            using var accepted = await listener.AcceptAsync().WithTimeout(Step);
            Assert.Equal(source, ((IPEndPoint)accepted.RemoteEndPoint!).Address);

            using var toTarget = await Lab.Nodes[k - 1].ConnectTcpAsync(new IPEndPoint(ClusterLab.TargetAddress, TargetServers.TcpEchoPort), Step).WithTimeout(Step);
            Assert.Equal(nodeAddress, ((IPEndPoint)toTarget.LocalEndPoint!).Address);
            await AssertEchoAsync(toTarget, $"from node {k}");
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task LinkDownAndLoss_OnANode_CutItOffUntilRestored()
    {
        const int k = 2;
        var target = new IPEndPoint(ClusterLab.TargetAddress, TargetServers.TcpEchoPort);
        var short1 = TimeSpan.FromSeconds(1);
        try
        {
            Lab.LinkDown(k);
            await Assert.ThrowsAnyAsync<Exception>(() => Lab.Nodes[k - 1].ConnectTcpAsync(target, short1).WithTimeout(Step));
            Lab.LinkUp(k);
            await Lab.Nodes[k - 1].WaitForTcpPortAsync(target.Address, target.Port, TimeSpan.FromSeconds(10), fixture.Describe).WithTimeout(StepLong);

            // 100% loss in both directions: nothing passes; 0 removes the rule.
            await Lab.SetLossAsync(k, 100).WithTimeout(Step);
            await Assert.ThrowsAnyAsync<Exception>(() => Lab.Nodes[k - 1].ConnectTcpAsync(target, short1).WithTimeout(Step));
            await Assert.ThrowsAnyAsync<Exception>(() => Lab.Client.ConnectTcpAsync(new IPEndPoint(ClusterLab.NodeAddress(k), 9101), short1).WithTimeout(Step));

            // Both directions drop: frames from the node (ingress of its port) and to it (egress).
            var listing = await Lab.Switch.RunAsync(LabBinaries.Require("nft", "nftables"), ["list", "table", "netdev", $"l2lab_loss_{Lab.SwitchPort(k)}"], Step).WithTimeout(Step);
            var counters = System.Text.RegularExpressions.Regex.Matches(listing.StdOut, @"counter packets (\d+)").Select(m => int.Parse(m.Groups[1].Value)).ToArray();
            Assert.True(counters.Length == 2 && counters.All(c => c > 0), listing.ToString());
            await Lab.SetLossAsync(k, 0).WithTimeout(Step);
            await Lab.Nodes[k - 1].WaitForTcpPortAsync(target.Address, target.Port, TimeSpan.FromSeconds(10), fixture.Describe).WithTimeout(StepLong);

            // Setting a loss twice replaces it; removing twice is harmless.
            await Lab.SetLossAsync(k, 30).WithTimeout(Step);
            await Lab.SetLossAsync(k, 20).WithTimeout(Step);
            await Lab.SetLossAsync(k, 0).WithTimeout(Step);
            await Lab.SetLossAsync(k, 0).WithTimeout(Step);
        }
        finally
        {
            Lab.LinkUp(k);
            await Lab.SetLossAsync(k, 0).WithTimeout(Step);
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public void PortSlices_OfEveryNode_AreDisjointCoverTheRangeAndNameIt()
    {
        foreach (var n in new[] { 1, 2, 3, 7, 9 })
        {
            var next = ClusterPortSlice.RangeLow;
            for (var k = 1; k <= n; k++)
            {
                var (low, high) = ClusterPortSlice.For(k, n);
                Assert.Equal(next, low);
                Assert.InRange(high - low + 1, 28232 / n, (28232 / n) + 1);
                Assert.Equal(k, ClusterPortSlice.NodeOfPort(low, n));
                Assert.Equal(k, ClusterPortSlice.NodeOfPort(high, n));
                next = high + 1;
            }

            Assert.Equal(ClusterPortSlice.RangeHigh + 1, next);
        }

        // Known values for three nodes: 28232 = 3 × 9410 + 2.
        Assert.Equal((32768, 42178), ClusterPortSlice.For(1, 3));
        Assert.Equal((42179, 51589), ClusterPortSlice.For(2, 3));
        Assert.Equal((51590, 60999), ClusterPortSlice.For(3, 3));
        Assert.Null(ClusterPortSlice.NodeOfPort(1080, 3));
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task PortSlices_ComparedWithL2BalSlice_AreEqual()
    {
        // Without a published l2bal this throws LabUnavailableException: a skip, with the reason.
        var l2bal = ClusterBinaries.L2Bal;

        for (var k = 1; k <= ClusterLabFixture.NodeCount; k++)
        {
            var result = await Lab.RunOnNode(k, l2bal, ["slice", "--node-id", $"{k}", "--node-count", $"{ClusterLabFixture.NodeCount}"]).WithTimeout(StepLong);
            var (low, high) = ClusterPortSlice.For(k, ClusterLabFixture.NodeCount);
            Assert.True(result.Succeeded, result.ToString());
            Assert.Equal($"{low}-{high}", result.StdOut.Trim());
        }

        // Without --node-id: every node's slice, one line each.
        var all = await Lab.RunOnNode(1, l2bal, ["slice", "--node-count", $"{ClusterLabFixture.NodeCount}"]).WithTimeout(StepLong);
        Assert.True(all.Succeeded, all.ToString());
        Assert.Equal(Enumerable.Range(1, ClusterLabFixture.NodeCount).Select(k => $"node {k}: {ClusterPortSlice.For(k, ClusterLabFixture.NodeCount).Low}-{ClusterPortSlice.For(k, ClusterLabFixture.NodeCount).High}"),
            all.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task StaticVipOnNode1_ProxyKilled_IsRecordedAsFailures()
    {
        Lab.SetStaticVip(1, present: true);
        LabProcess? proxy = null;
        try
        {
            proxy = Lab.StartProxy(1, "--negotiate-timeout", "2s");
            await Lab.Client.WaitForTcpPortAsync(ClusterLab.VipAddress, ClusterLab.ProxyPort, TimeSpan.FromSeconds(20), fixture.Describe, proxy).WithTimeout(StepLong);

            // Healthy: every CONNECT from every source is served by node 1; sessions and UDP unbroken.
            var healthy = await new TrafficGenerator(Lab.Client, Options(TimeSpan.FromSeconds(3))).RunAsync().WithTimeout(StepLong);
            output.WriteLine($"healthy: {healthy.Summary()}");
            var why = $"{healthy.Summary()}\n{fixture.Describe()}";
            Assert.True(healthy.Connects.Count >= ClusterLabFixture.ClientCount, why);
            LabAssert.All(healthy.Connects, c => c.Outcome == TrafficOutcome.Ok && c.Node == 1, c => $"{c}\n{why}");
            Assert.Equal(ClusterLabFixture.ClientCount, healthy.PerSource.Count);
            Assert.Equal([1], healthy.PerNode.Keys);
            Assert.Equal(4, healthy.Sessions.Count);
            LabAssert.All(healthy.Sessions, s => s.Break is null && s.Node == 1 && s.Exchanges > 5, s => $"{s}\n{why}");
            Assert.Equal(3, healthy.Udp.Count);
            LabAssert.All(healthy.Udp, u => u.SetupFailure is null && u.ControlBreak is null && u.Node == 1 && u.Sent > 5 && u.Lost == 0, u => $"{u}\n{why}");

            // JSON round-trips the records and carries the aggregates.
            using var json = JsonDocument.Parse(healthy.ToJson());
            Assert.Equal(healthy.Connects.Count, json.RootElement.GetProperty("Connects").GetArrayLength());
            Assert.True(json.RootElement.GetProperty("PerSource").TryGetProperty(Lab.ClientAddresses[0].ToString(), out _));

            // The HTTP payload: a GET of the known file through each CONNECT.
            var http = await new TrafficGenerator(Lab.Client, Options(TimeSpan.FromSeconds(1)) with
            {
                ConnectTarget = new IPEndPoint(ClusterLab.TargetAddress, TargetServers.HttpPort),
                ConnectPayload = ConnectPayload.Http,
                SessionSources = [],
                UdpSources = [],
            }).RunAsync().WithTimeout(StepLong);
            output.WriteLine($"http: {http.Summary()}");
            Assert.True(http.Connects.Count > 0 && http.ConnectsOk == http.Connects.Count && http.PerNode.Keys.SequenceEqual([1]), $"{http.Summary()}\n{fixture.Describe()}");

            // Killed mid-run: the generator must see it (the tool can fail).
            var generator = new TrafficGenerator(Lab.Client, Options(TimeSpan.FromSeconds(4)));
            var run = generator.RunAsync();
            await WaitUntilAsync(() => generator.Live.ConnectsOk >= 20 && generator.Live.SessionExchanges >= 12 && generator.Live.UdpReceived >= 9, run);
            var killedAt = generator.ElapsedMs;
            proxy.Kill(LabSignals.Kill);
            var broken = await run.WithTimeout(StepLong);
            output.WriteLine($"proxy killed at {killedAt:0} ms: {broken.Summary()}");
            why = $"{broken.Summary()}\n{fixture.Describe()}";

            Assert.Contains(broken.Connects, c => c.Outcome == TrafficOutcome.Ok && c.EndMs < killedAt);
            Assert.Contains(broken.Connects, c => c.Outcome == TrafficOutcome.Refused && c.StartMs > killedAt);
            // 500 ms of slack: the kill's time is read before the signal, and the generator stamps an event in a continuation that a
            // loaded machine may run late; a proxy that served on after its kill would serve for the seconds left of the run.
            Assert.DoesNotContain(broken.Connects, c => c.Outcome == TrafficOutcome.Ok && c.StartMs > killedAt + 500);
            LabAssert.All(broken.Sessions, s => s.Break is not null && s.BreakMs >= killedAt && s.Exchanges > 0, s => $"{s}\n{why}");
            LabAssert.All(broken.Udp, u => u.ControlBreak is not null && u.Lost > 0 && u.Received > 0, u => $"{u}\n{why}");
            LabAssert.All(broken.PerSource.Values, s => s.LongestGapMs >= broken.DurationMs - killedAt - 500, s => $"{s}\n{why}");
        }
        finally
        {
            proxy?.Stop();
            Lab.SetStaticVip(1, present: false);
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task StaticVipOnNode1_ProxyStoppedThenContinued_TimesOutThenServesAgain()
    {
        Lab.SetStaticVip(1, present: true);
        LabProcess? proxy = null;
        try
        {
            proxy = Lab.StartProxy(1);
            await Lab.Client.WaitForTcpPortAsync(ClusterLab.VipAddress, ClusterLab.ProxyPort, TimeSpan.FromSeconds(20), fixture.Describe, proxy).WithTimeout(StepLong);
            var connectsOnly = Options(TimeSpan.FromSeconds(1)) with { SessionSources = [], UdpSources = [], StepTimeout = TimeSpan.FromMilliseconds(500) };

            // SIGSTOP: the kernel still completes the TCP handshake (listen backlog), the SOCKS greeting is never answered.
            proxy.Kill(LabSignals.Stop);
            var stopped = await new TrafficGenerator(Lab.Client, connectsOnly).RunAsync().WithTimeout(StepLong);
            output.WriteLine($"stopped: {stopped.Summary()}");
            Assert.True(stopped.Connects.Count > 0 && stopped.Connects.All(c => c.Outcome == TrafficOutcome.Timeout), $"{stopped.Summary()}\n{fixture.Describe()}");

            // Continued: it works through its backlog first, so each step gets the default 2 s again.
            proxy.Kill(LabSignals.Cont);
            var resumed = await new TrafficGenerator(Lab.Client, connectsOnly with { StepTimeout = TimeSpan.FromSeconds(2) }).RunAsync().WithTimeout(StepLong);
            output.WriteLine($"continued: {resumed.Summary()}");
            Assert.True(resumed.Connects.Count > 0 && resumed.ConnectsOk == resumed.Connects.Count, $"{resumed.Summary()}\n{fixture.Describe()}");
        }
        finally
        {
            proxy?.Kill(LabSignals.Cont);
            proxy?.Stop();
            Lab.SetStaticVip(1, present: false);
        }
    }

    private static readonly TimeSpan StepLong = TimeSpan.FromSeconds(30);

    private TrafficOptions Options(TimeSpan duration) => new()
    {
        Proxy = Lab.ProxyEndPoint,
        Sources = Lab.ClientAddresses,
        ConnectTarget = new IPEndPoint(ClusterLab.TargetAddress, TargetServers.TcpEchoPort),
        Duration = duration,
        MaxConnects = 2000,
        SessionSources = [.. Lab.ClientAddresses.Take(4)],
        EchoTarget = new IPEndPoint(ClusterLab.TargetAddress, TargetServers.TcpEchoPort),
        UdpSources = [.. Lab.ClientAddresses.Skip(4).Take(3)],
        UdpEchoTarget = new IPEndPoint(ClusterLab.TargetAddress, TargetServers.UdpEchoPort),
        NodeOf = Lab.NodeOf,
    };

    private static async Task WaitUntilAsync(Func<bool> condition, Task running)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.False(running.IsCompleted, "the generator finished before the condition held");
            Assert.True(DateTime.UtcNow < deadline, "condition not reached within 10 s");
            await Task.Delay(20);
        }
    }

    private static async Task AssertEchoAsync(Socket socket, string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        await socket.SendAsync(bytes).WithTimeout(Step);
        using var cts = new CancellationTokenSource(Step);
        var echo = await Socks5Client.ReadExactlyAsync(socket, bytes.Length, cts.Token).WithTimeout(Step);
        Assert.Equal(text, Encoding.ASCII.GetString(echo));
    }
}
