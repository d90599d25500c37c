using System.Globalization;
using System.Net;
using System.Net.Sockets;
using L2Balance.Lab.Cluster;
using L2Balance.Lab.Tests.Balancer.Control;
using L2Balance.Lab.Tests.Proxy;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Balancer.Cluster;

/// <summary>A checked session of the migration cluster: its client address, the client end's own endpoint (as l2proxy lists it) and its streams.</summary>
internal sealed record ClusterSession(IPAddress Source, IPEndPoint ClientEnd, LabSession Session)
{
    public bool Intact => Session.Up.Intact && Session.Down.Intact;

    /// <summary>No byte lost, duplicated or reordered in what arrived, whether or not the session was cut.</summary>
    public bool NoWrongByte => Session.Up.Mismatch < 0 && Session.Down.Mismatch < 0;

    public override string ToString() => $"{Source} ({ClientEnd}): {Session.Describe()}";
}

/// <summary>Counters of one l2bal (done, refused, moved-out flows resolved) and of every l2proxy (moves out and in, index = node - 1).</summary>
internal sealed record MigrationCounts(long Done, long Refused, long[] Out, long[] In, long MovedOutResolved = 0);

/// <summary>The generic parts of the migration cluster's tests: checked sessions on a node's buckets, listings, proxy metrics.</summary>
public partial class MigrationClusterFixture
{
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(10);

    /// <summary>The client addresses (IPv6 ones with <paramref name="ipv6"/>) whose bucket node <paramref name="k"/> owns now.</summary>
    internal async Task<List<IPAddress>> SourcesOfAsync(int k, bool ipv6 = false)
    {
        var all = ClusterScenarios.Sources(Lab, ipv6);
        var owners = await OwnersAsync(1, all);
        var sources = all.Where(a => owners[a.ToString()] == k).ToList();
        Assert.True(sources.Count > 0, $"node {k} owns no client address\n{Describe()}");
        return sources;
    }

    /// <summary>The target's listener for checked sessions (one accept per session, in order), on its IPv6 address with <paramref name="ipv6"/>.</summary>
    internal Socket ListenOnTarget(int backlog, bool ipv6 = false)
    {
        var listener = Lab.Target.OpenSocket(ipv6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(ipv6 ? ClusterLab.Target6Address : ClusterLab.TargetAddress, 0));
        listener.Listen(backlog);
        return listener;
    }

    /// <summary>A bulk transfer's pace: about 8 MB/s each way.</summary>
    internal static readonly StreamPace BulkPace = new(16 * 1024, TimeSpan.FromMilliseconds(2));

    /// <summary>Opens <paramref name="count"/> checked sessions from <paramref name="sources"/> in turn (1 KiB each way every 20 ms; the first <paramref name="bulk"/> bulk), added to <paramref name="into"/> as they open.</summary>
    internal async Task OpenSessionsAsync(List<ClusterSession> into, IReadOnlyList<IPAddress> sources, int count, Socket listener, int seed, CancellationToken stop, int bulk = 0)
    {
        for (var i = 0; i < count; i++)
        {
            // The first `bulk` sessions are bulk transfers (16 KiB each way every 2 ms, as the primitives' test), the others paced.
            into.Add(await OpenSessionAsync(sources[i % sources.Count], listener, seed + (2 * i), stop, i < bulk ? BulkPace : null));
        }
    }

    /// <summary>A SOCKS5 CONNECT from <paramref name="source"/> through the VIP of its family to <paramref name="listener"/>, with its streams started.</summary>
    internal async Task<ClusterSession> OpenSessionAsync(IPAddress source, Socket listener, int seed, CancellationToken stop, StreamPace? pace = null)
    {
        bool ipv6 = source.AddressFamily == AddressFamily.InterNetworkV6;
        var client = Lab.Client.OpenSocket(source.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // The seed is the source port: tests of the collection never reuse a 5-tuple (a flow that died mid-move stays dropped; docs/design.md#failure-paths-of-a-move).
            client.Bind(new IPEndPoint(source, seed));
            await client.ConnectAsync(ipv6 ? ClusterLab.ProxyEndPoint6 : Lab.ProxyEndPoint).WithTimeout(Step);
            var (code, bound) = await Socks5Client.HandshakeAsync(client, 1, (IPEndPoint)listener.LocalEndPoint!, CancellationToken.None).WithTimeout(Step);
            Assert.True(code == 0, $"CONNECT from {source}: {code} {bound}\n{Describe()}");
            // One session at a time: the next accepted connection is this one's target leg.
            var target = await listener.AcceptAsync(CancellationToken.None).AsTask().WithTimeout(Step);
            var peer = (IPEndPoint)target.RemoteEndPoint!;
            Assert.Equal(new IPEndPoint(ipv6 ? ClusterLab.Vip6Address : ClusterLab.VipAddress, bound.Port), new IPEndPoint(ipv6 ? peer.Address : peer.Address.MapToIPv4(), peer.Port));
            var end = (IPEndPoint)client.LocalEndPoint!;
            return new ClusterSession(source, new IPEndPoint(ipv6 ? end.Address : end.Address.MapToIPv4(), end.Port),
                new LabSession(client, target, null, seed, pace ?? new StreamPace(1024, TimeSpan.FromMilliseconds(20)), stop));
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    /// <summary>Stops the streams (each end half-closes) and waits up to <paramref name="bound"/> for every session to end; returns those that did not.</summary>
    internal static async Task<List<ClusterSession>> FinishAsync(IReadOnlyList<ClusterSession> sessions, CancellationTokenSource stop, TimeSpan bound)
    {
        await stop.CancelAsync();
        var ended = Task.WhenAll(sessions.Select(s => s.Session.CompletionAsync()));
        await Task.WhenAny(ended, Task.Delay(bound));
        return [.. sessions.Where(s => !s.Session.CompletionAsync().IsCompleted)];
    }

    /// <summary>The sessions node k's l2proxy lists on its migration socket (none when it does not run).</summary>
    internal async Task<List<ListedSession>> ListAsync(int k) => Lab.Proxy(k) is null or { HasExited: true } ? []
        : [.. (await MigrationLab.ControlAsync(Lab.Nodes[k - 1], "list")).SkipLast(1).Select(ListedSession.Parse)];

    /// <summary>Which running node's l2proxy lists each client end (a client end listed twice fails the test: one owner per session).</summary>
    internal async Task<Dictionary<IPEndPoint, int>> HoldersAsync()
    {
        var holders = new Dictionary<IPEndPoint, int>();
        for (var k = 1; k <= NodeCount; k++)
        {
            foreach (var listed in await ListAsync(k))
            {
                Assert.True(holders.TryAdd(listed.Client, k), $"session {listed.Client} is listed by nodes {holders.GetValueOrDefault(listed.Client)} and {k}\n{Describe()}");
            }
        }
        return holders;
    }

    /// <summary>A sample of node k's l2proxy metrics (the sum of the lines that start with <paramref name="sample"/>, over every worker's endpoint).</summary>
    internal async Task<long> ProxyMetricAsync(int k, string sample)
    {
        long sum = 0;
        for (var worker = 0; worker < ProxyWorkers; worker++)
        {
            var scrape = await Lab.RunOnNode(k, "curl", ["-sS", "-m", "5", $"http://127.0.0.1:{ProxyMetricsPort + worker}/metrics"]).WithTimeout(Step);
            Assert.True(scrape.Succeeded, scrape.ToString());
            sum += scrape.StdOut.Split('\n').Where(l => l.StartsWith(sample, StringComparison.Ordinal))
                .Sum(l => long.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
        }
        return sum;
    }

    /// <summary>Node k's l2bal <c>migrations</c> once no run is in progress.</summary>
    internal Task<System.Text.Json.JsonElement> MigrationsSettledAsync(int k) =>
        MigrateControlTests.MigrationsWhenAsync(Lab, k, m => m.GetProperty("inProgress").GetInt64() == 0);

    /// <summary>
    /// Node k's l2bal migrations done and refused (all reasons), and every running node's l2proxy moves
    /// out and in: the daemons outlive a test, so tests compare these before and after.
    /// </summary>
    internal async Task<MigrationCounts> CountsAsync(int k)
    {
        var m = await MigrationsSettledAsync(k);
        var outs = new long[NodeCount];
        var ins = new long[NodeCount];
        for (var n = 1; n <= NodeCount; n++)
        {
            if (Lab.Proxy(n) is { HasExited: false })
            {
                outs[n - 1] = await ProxyMetricAsync(n, "l2proxy_migrations_total{direction=\"out\"}");
                ins[n - 1] = await ProxyMetricAsync(n, "l2proxy_migrations_total{direction=\"in\"}");
            }
        }
        return new MigrationCounts(m.GetProperty("done").GetInt64(), m.GetProperty("refused").EnumerateObject().Sum(r => r.Value.GetInt64()), outs, ins,
            m.GetProperty("movedOutResolved").GetInt64());
    }

    /// <summary>
    /// Polls the moves in of the proxies of <paramref name="receivers"/> in-process (a poll is a local HTTP
    /// request, no process started) until one exceeds its count in <paramref name="before"/>, or
    /// <paramref name="running"/> ends, or 10 s; returns what they had taken by then.
    /// </summary>
    internal async Task<long> WaitFirstMoveInAsync(int[] receivers, MigrationCounts before, Task running)
    {
        var supplies = receivers.Select(k => new NamespaceSocketSupply(Lab.Nodes[k - 1], AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp, 64)).ToList();
        try
        {
            var deadline = DateTime.UtcNow + Step;
            while (true)
            {
                long taken = 0;
                for (var i = 0; i < receivers.Length; i++)
                {
                    taken += await MigrationLab.MetricAsync(supplies[i], new IPEndPoint(IPAddress.Loopback, ProxyMetricsPort), "l2proxy_migrations_total{direction=\"in\"}")
                        - before.In[receivers[i] - 1];
                }
                if (taken > 0 || running.IsCompleted || DateTime.UtcNow > deadline)
                {
                    return taken;
                }
            }
        }
        finally
        {
            supplies.ForEach(s => s.Dispose());
        }
    }

    /// <summary>
    /// Slows what node k's l2proxy answers on migration channels (Ready) to about 2 KB/s, the rest dropped
    /// and retransmitted: a batch then moves one session after another over seconds, so a kill lands mid-transfer.
    /// </summary>
    internal async Task ThrottleMigrationAnswersAsync(int k, bool on)
    {
        const string throttle = """
            table inet l2lab_throttle {
                chain out {
                    type filter hook output priority 0; policy accept;
                    tcp sport 1081 limit rate over 2 kbytes/second burst 1500 bytes drop
                }
            }

            """;
        var script = "add table inet l2lab_throttle\ndelete table inet l2lab_throttle\n" + (on ? throttle : "");
        (await Lab.Nodes[k - 1].RunAsync(LabBinaries.Require("nft", "nftables"), ["-f", "-"], Step, script)).EnsureSuccess();
    }

    /// <summary>SIGKILLs node k's l2proxy (no clean-up of any kind) and waits for its exit.</summary>
    internal async Task KillProxyAsync(int k)
    {
        var proxy = Lab.Proxy(k)!;
        proxy.Kill(LabSignals.Kill);
        Assert.True(await proxy.WaitForExitAsync(Step), $"l2proxy {k} outlived SIGKILL\n{Describe()}");
    }

    /// <summary>Waits until node k's l2proxy takes migrations (its l2bal pushed <c>key</c> and <c>accept</c>: the channel port listens).</summary>
    internal async Task WaitTakesMigrationsAsync(int k)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (true)
        {
            var ss = await Lab.RunOnNode(k, "ss", ["-Htln", $"src {ClusterLab.NodeAddress(k)}:1081"]).WithTimeout(Step);
            if (ss.Succeeded && ss.StdOut.Trim().Length > 0)
            {
                return;
            }
            Assert.True(DateTime.UtcNow < deadline, $"node {k}'s l2proxy never listened on its migration port\n{ss}\n{Describe()}");
            await Task.Delay(100);
        }
    }

    /// <summary>Stops node k's l2proxy and l2bal (SIGTERM), starts both again and waits until every node holds its share and k takes migrations.</summary>
    internal async Task RestartNodeAsync(int k)
    {
        foreach (var process in new[] { Lab.Proxy(k)!, Lab.Balancer(k)! })
        {
            process.Stop();
            Assert.True(await process.WaitForExitAsync(Step), $"{process.Header} did not stop\n{Describe()}");
        }
        StartBalancer(k);
        await StartProxyAsync(k);
        await WaitAllUpAsync();
        await WaitTakesMigrationsAsync(k);
    }

    /// <summary>The client ends among <paramref name="ends"/> whose inbound conntrack entry node k still holds, with the entry's line (l2bal deletes a moved flow's entries at the move).</summary>
    internal async Task<List<string>> MovedFlowsLeftInConntrackAsync(int k, IEnumerable<IPEndPoint> ends)
    {
        var table = await Lab.RunOnNode(k, "cat", ["/proc/net/nf_conntrack"]).WithTimeout(Step);
        Assert.True(table.Succeeded, table.ToString());
        var lines = table.StdOut.Split('\n');
        return [.. ends.Select(e => (End: e, Line: lines.FirstOrDefault(l => l.Contains($" src={e.Address} dst={Lab.Vip} sport={e.Port} ", StringComparison.Ordinal))))
            .Where(x => x.Line is not null)
            .Select(x => $"{x.End}: {x.Line}")];
    }

    /// <summary>The elements of node k's <c>moved_out</c> set (flows moving away), as <c>nft list set</c> prints them.</summary>
    internal async Task<List<string>> MovedOutElementsAsync(int k)
    {
        var set = await Lab.RunOnNode(k, LabBinaries.Require("nft", "nftables"), ["list", "set", "ip", "l2bal", "moved_out"]).WithTimeout(Step);
        Assert.True(set.Succeeded, set.ToString());
        return [.. System.Text.RegularExpressions.Regex.Matches(set.StdOut, @"tcp \. [0-9.]+ \. \d+ \. [0-9.]+ \. \d+").Select(m => m.Value)];
    }

    /// <summary>Runs an l2bal command on node k (bounded), e.g. <c>drain --migrate</c>.</summary>
    internal Task<LabRunResult> L2BalAsync(int k, params string[] args) => Lab.RunOnNode(k, ClusterBinaries.L2Bal, args, Step).WithTimeout(Step);
}
