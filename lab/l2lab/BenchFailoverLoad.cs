using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using L2Balance.Lab.Cluster;

namespace L2Balance.Lab.Cli;

/// <summary>
/// Filter cost: one client's bulk throughput through the proxy on node 1, in five settings that
/// differ by one thing each, so the cost of each part shows on its own.
/// </summary>
/// <param name="FilteredGbit">Per run, through the cluster: l2bal on every node, every link up.</param>
/// <param name="AloneGbit">Per run, l2bal on node 1 alone (the other nodes' daemons stopped, their links down): its filter and its daemon, and neither flooded copies nor other nodes' daemons on these shared cores, which on real hardware run on other machines.</param>
/// <param name="NoFilterGbit">Per run, the same cluster-MAC frames to node 1 with no filter: l2bal stopped, the VIP on lo, the router's neighbour entry pinned to the cluster MAC, and the one rule any cluster-MAC receiver needs (pkttype host).</param>
/// <param name="NoFilterConntrackGbit">Per run, the no-filter path with conntrack switched on in node 1 by one rule: the conntrack part of the filter's cost.</param>
/// <param name="PlainGbit">Per run, the VIP a plain address of node 1's eth0, as keepalived holds it: unicast frames, no l2bal.</param>
internal sealed record FilterCost(
    IReadOnlyList<double> FilteredGbit, IReadOnlyList<double> AloneGbit, IReadOnlyList<double> NoFilterGbit,
    IReadOnlyList<double> NoFilterConntrackGbit, IReadOnlyList<double> PlainGbit)
{
    public double FilteredMedian => ClusterOps.Median(FilteredGbit);

    public double AloneMedian => ClusterOps.Median(AloneGbit);

    public double NoFilterMedian => ClusterOps.Median(NoFilterGbit);

    public double NoFilterConntrackMedian => ClusterOps.Median(NoFilterConntrackGbit);

    public double PlainMedian => ClusterOps.Median(PlainGbit);

    /// <summary>The filter's own cost (the issue's target): 1 − alone / no filter, same frames, in %.</summary>
    public double CostPercent => Cost(AloneMedian, NoFilterMedian);

    /// <summary>What conntrack alone costs on the no-filter path, in %.</summary>
    public double ConntrackCostPercent => Cost(NoFilterConntrackMedian, NoFilterMedian);

    /// <summary>Node 1 alone with l2bal against the plain unicast VIP: the filter plus the cluster MAC's delivery, in %.</summary>
    public double AloneVsPlainPercent => Cost(AloneMedian, PlainMedian);

    /// <summary>The whole cluster against the plain unicast VIP, in %: adds the other nodes' flooded copies on these shared cores.</summary>
    public double ClusterVsPlainPercent => Cost(FilteredMedian, PlainMedian);

    private static double Cost(double with, double without) => without > 0 ? (1 - (with / without)) * 100 : double.NaN;
}

/// <summary>The soak: a long run at one timing with the proxies under load, counting false covers.</summary>
internal sealed record SoakResult(
    string Setting, double Seconds, int FalseDeaths, long OwnershipChanges, int ConnectsOk, int ConnectsFailed,
    double BulkGbit, double[] BalancerCpu, double[] ProxyCpu, string LoadAverage,
    int Stalls, int Unhealthy, int Fenced, IReadOnlyList<string> Causes, IReadOnlyList<string> StartUp);

/// <summary>
/// The load parts of <c>l2lab bench-failover</c>: CPU of l2bal while the proxies work, the filter's
/// cost to one client's throughput, and the soak (<c>--soak SECONDS</c>): the fast timing for
/// minutes with the proxies under full load, where any "peer is dead" is a false cover.
/// </summary>
internal static class BenchFailoverLoad
{
    /// <summary>TCP port of the bench's byte sink on the target host.</summary>
    public const int SinkPort = 7100;

    /// <summary>Each soak node's l2bal metrics endpoint, inside its own namespace.</summary>
    private const int MetricsPort = 9100;

    /// <summary>Rounds of the five settings; single rounds spread by several percent (one TCP stream on two shared cores), so 7.</summary>
    private const int BulkRuns = 7;
    private static readonly TimeSpan BulkDuration = TimeSpan.FromSeconds(3);

    /// <summary>CPU (% of a core) of each process over <paramref name="window"/>, from utime+stime in /proc.</summary>
    public static async Task<double[]> CpuAsync(int[] pids, TimeSpan window, CancellationToken ct)
    {
        var before = pids.Select(CpuTicks).ToArray();
        var sw = Stopwatch.StartNew();
        await Task.Delay(window, ct).ConfigureAwait(false);
        var after = pids.Select(CpuTicks).ToArray();
        var seconds = sw.Elapsed.TotalSeconds;

        // USER_HZ is 100 on Linux x86-64 and arm64 (sysconf(_SC_CLK_TCK)).
        return pids.Select((_, i) => Math.Round((after[i] - before[i]) / 100.0 / seconds * 100, 3)).ToArray();
    }

    private static long CpuTicks(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');

        // After "pid (comm) ", field 3 (state) is index 0: utime is field 14 (index 11), stime field 15.
        return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Measures <see cref="FilterCost"/> on a running cluster, the five settings in turn, <see cref="BulkRuns"/>
    /// rounds, medians. The client source is one that node 1 owns. The cluster MAC is read from the
    /// router's neighbour entry while l2bal still answers for the VIP, so the no-filter setting
    /// sends exactly the frames l2bal's nodes receive. Ends with l2bal stopped on every node.
    /// </summary>
    public static async Task<FilterCost> FilterCostAsync(ClusterLab lab, IPAddress source, string[] balancerArgs, Action<string> log, CancellationToken ct)
    {
        await using var sink = ByteSink.Start(lab.Target, SinkPort);
        var target = new IPEndPoint(ClusterLab.TargetAddress, SinkPort);
        var nodes = Enumerable.Range(1, lab.Nodes.Count).ToArray();
        var others = nodes.Where(k => k != 1).ToArray();
        var vip = ClusterLab.VipAddress.ToString();
        List<double> filtered = [], alone = [], noFilter = [], conntrack = [], plain = [];
        for (var i = 0; i < BulkRuns; i++)
        {
            filtered.Add(await BulkAsync().ConfigureAwait(false));
            var clusterMac = await VipMacAsync().ConfigureAwait(false);
            // The others leave (SIGTERM: node 1 takes their buckets) and their links go down, so
            // node 1's filter is measured with nothing else of l2bal's on the shared cores.
            await ClusterOps.StopBalancersAsync(lab, others).ConfigureAwait(false);
            foreach (var k in others)
            {
                lab.LinkDown(k);
            }
            await ClusterOps.WaitForSharesAsync(lab, [1], TimeSpan.FromSeconds(30), _ => { }, ct).ConfigureAwait(false);
            alone.Add(await BulkAsync().ConfigureAwait(false));

            await ClusterOps.StopBalancersAsync(lab, [1]).ConfigureAwait(false);
            await Node1IpAsync("addr", "add", $"{vip}/32", "dev", "lo").ConfigureAwait(false);
            await NftOnNode1Async($$"""
                table netdev l2bench {
                    chain ingress {
                        type filter hook ingress device "eth0" priority -500; policy accept;
                        ether daddr {{clusterMac}} meta pkttype set host
                    }
                }
                """).ConfigureAwait(false);
            await RouterAsync("neigh", "replace", vip, "lladdr", clusterMac, "dev", "eth0", "nud", "permanent").ConfigureAwait(false);
            noFilter.Add(await BulkAsync().ConfigureAwait(false));
            // One rule that uses conntrack switches it on for every packet of node 1, as l2bal's
            // established-flow rule does.
            await NftOnNode1Async("add table ip l2bench\nadd chain ip l2bench pre { type filter hook prerouting priority -150; }\nadd rule ip l2bench pre ct state established accept\n").ConfigureAwait(false);
            conntrack.Add(await BulkAsync().ConfigureAwait(false));
            await NftOnNode1Async("delete table ip l2bench\ndelete table netdev l2bench\n").ConfigureAwait(false);
            await Node1IpAsync("addr", "del", $"{vip}/32", "dev", "lo").ConfigureAwait(false);
            await RouterAsync("neigh", "del", vip, "dev", "eth0").ConfigureAwait(false);

            lab.SetStaticVip(1, present: true);
            plain.Add(await BulkAsync().ConfigureAwait(false));
            lab.SetStaticVip(1, present: false);
            await RouterAsync("neigh", "flush", "to", vip).ConfigureAwait(false);
            foreach (var k in others)
            {
                lab.LinkUp(k);
            }
            if (i < BulkRuns - 1)
            {
                await ClusterOps.StartBalancersAsync(lab, nodes, balancerArgs, ct).ConfigureAwait(false);
                await ClusterOps.WaitForSharesAsync(lab, nodes, TimeSpan.FromSeconds(30), _ => { }, ct).ConfigureAwait(false);
            }
        }
        Series("through the cluster (l2bal on every node)", filtered);
        Series("l2bal on node 1 alone (the other nodes' daemons stopped, links down)", alone);
        Series("the same cluster-MAC frames to node 1, no filter", noFilter);
        Series("no filter, conntrack on in node 1", conntrack);
        Series("the VIP a plain address of node 1's eth0, no l2bal", plain);
        return new FilterCost(filtered, alone, noFilter, conntrack, plain);

        Task<double> BulkAsync() => BulkGbitAsync(lab.Client, source, lab.ProxyEndPoint, target, sink, BulkDuration, ct);

        void Series(string what, List<double> gbit) =>
            log(string.Create(CultureInfo.InvariantCulture, $"filter cost: {what}: {string.Join(" ", gbit.Select(g => $"{g:0.00}"))} Gbit/s"));

        async Task RunAsync(LabHost host, string file, string[] args, string? stdin = null) =>
            (await host.RunAsync(file, args, TimeSpan.FromSeconds(10), stdin, ct).ConfigureAwait(false)).EnsureSuccess();

        Task NftOnNode1Async(string script) => RunAsync(lab.Nodes[0], "nft", ["-f", "-"], script);

        Task Node1IpAsync(params string[] args) => RunAsync(lab.Nodes[0], "ip", args);

        Task RouterAsync(params string[] args) => RunAsync(lab.Router, "ip", args);

        // The MAC the router resolved the VIP to: l2bal's cluster MAC while l2bal runs.
        async Task<string> VipMacAsync()
        {
            var mac = await lab.RouterVipMacAsync(ct).ConfigureAwait(false);
            return mac.Length > 0 ? mac : throw new InvalidOperationException("filter cost: the router has no MAC for the VIP");
        }
    }

    /// <summary>
    /// One SOCKS5 CONNECT from <paramref name="source"/> to the sink, then bulk writes for
    /// <paramref name="duration"/>; the rate is what the sink received in the last
    /// <paramref name="duration"/> minus its first half second (slow start excluded).
    /// </summary>
    public static async Task<double> BulkGbitAsync(LabHost client, IPAddress source, IPEndPoint proxy, IPEndPoint target, ByteSink sink, TimeSpan duration, CancellationToken ct)
    {
        using var socket = client.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(source, 0));
        using var setup = CancellationTokenSource.CreateLinkedTokenSource(ct);
        setup.CancelAfter(TimeSpan.FromSeconds(5));
        await socket.ConnectAsync(proxy, setup.Token).ConfigureAwait(false);
        var (code, _) = await Socks5Client.HandshakeAsync(socket, Socks5Client.Connect, target, setup.Token).ConfigureAwait(false);
        if (code != 0)
        {
            throw new InvalidOperationException($"bulk: SOCKS5 CONNECT to {target} refused with reply {code}");
        }

        var buffer = new byte[256 * 1024];
        var warm = TimeSpan.FromMilliseconds(500);
        var clock = Stopwatch.StartNew();
        long startBytes = -1;
        var startAt = TimeSpan.Zero;
        while (clock.Elapsed < warm + duration)
        {
            await socket.SendAsync(buffer, SocketFlags.None, ct).ConfigureAwait(false);
            if (startBytes < 0 && clock.Elapsed >= warm)
            {
                startBytes = sink.Bytes;
                startAt = clock.Elapsed;
            }
        }
        var bytes = sink.Bytes - startBytes;
        var seconds = (clock.Elapsed - startAt).TotalSeconds;
        socket.Shutdown(SocketShutdown.Both);
        return bytes * 8 / seconds / 1e9;
    }

    /// <summary>
    /// <c>--soak SECONDS</c>: 3 nodes at the fast timing, every proxy loaded (a CONNECT stream from
    /// all 60 client addresses and one bulk stream per node) for the whole run. Counts peers
    /// declared dead (each a false cover: nothing is killed) and ownership changes.
    /// </summary>
    public static async Task<SoakResult> SoakAsync(TimeSpan length, string[] balancerArgs, string setting, Action<string> log, CancellationToken ct)
    {
        log($"soak, {setting}: building a 3-node lab");
        await using var lab = await ClusterLab.CreateAsync(3, 60).ConfigureAwait(false);
        int[] all = [1, 2, 3];
        string[] args = [.. balancerArgs, "--metrics", $"127.0.0.1:{MetricsPort}"];
        await Task.WhenAll(all.Select(k => ClusterOps.StartNodeAsync(lab, k, ct, args))).ConfigureAwait(false);
        await ClusterOps.WaitForSharesAsync(lab, all, TimeSpan.FromSeconds(60), _ => { }, ct).ConfigureAwait(false);
        var changesBefore = await OwnershipChangesAsync(lab, all, ct).ConfigureAwait(false);
        await using var sink = ByteSink.Start(lab.Target, SinkPort);
        var full = ClusterOps.Table(3, all);
        var bulkSources = all.Select(k => lab.ClientAddresses.First(a => ClusterOps.OwnerOf(full, a) == k)).ToArray();
        log(string.Create(CultureInfo.InvariantCulture, $"soak, {setting}: {length.TotalSeconds:0} s of CONNECTs from 60 addresses plus one bulk stream per node"));
        var traffic = new TrafficGenerator(lab.Client, new TrafficOptions
        {
            Proxy = lab.ProxyEndPoint,
            Sources = lab.ClientAddresses,
            ConnectTarget = new IPEndPoint(ClusterLab.TargetAddress, TargetServers.TcpEchoPort),
            ConnectConcurrency = 12,
            MaxConnects = 5_000_000,
            Duration = length,
            NodeOf = lab.NodeOf,
        }).RunAsync(ct);
        var sinkTarget = new IPEndPoint(ClusterLab.TargetAddress, SinkPort);
        var bulk = bulkSources.Select(s => Task.Run(() => BulkGbitAsync(lab.Client, s, lab.ProxyEndPoint, sinkTarget, sink, length - TimeSpan.FromSeconds(1), ct), ct)).ToArray();
        var cpuWindow = TimeSpan.FromSeconds(Math.Min(60, length.TotalSeconds / 2));
        await Task.Delay(TimeSpan.FromSeconds(Math.Min(10, length.TotalSeconds / 4)), ct).ConfigureAwait(false);
        var pids = all.Select(k => lab.Balancer(k)!.Id).Concat(all.Select(k => lab.Proxy(k)!.Id)).ToArray();
        var cpu = await CpuAsync(pids, cpuWindow, ct).ConfigureAwait(false);
        var results = await traffic.ConfigureAwait(false);
        var gbit = (await Task.WhenAll(bulk).ConfigureAwait(false)).Sum();
        var changesAfter = await OwnershipChangesAsync(lab, all, ct).ConfigureAwait(false);
        // Facts from each daemon's status (docs/status-json.md): counters for deaths and stalls,
        // the kept events for the rest and for the causes.
        var statuses = new List<BalancerStatus>();
        foreach (var k in all)
        {
            statuses.Add(await ClusterOps.StatusAsync(lab, k, ct).ConfigureAwait(false)
                ?? throw new InvalidOperationException($"soak: l2bal on node {k} does not answer status\n{lab.Describe()}"));
        }
        var events = statuses.SelectMany(st => st.Events.Select(e => (Node: st.NodeId, Event: e))).OrderBy(e => e.Event.Time).ToArray();
        var deaths = (int)statuses.Sum(st => st.Count("peer-dead"));
        var stalls = (int)statuses.Sum(st => st.Count("stall"));
        // Not the start (a node is unhealthy until its first probe passes): only flaps under load.
        var unhealthy = events.Count(e => e.Event.Kind == "state" && e.Event.Text("reason") == "health-failing");
        var fenced = events.Count(e => e.Event.Kind == "released-all" && e.Event.Text("cause") == "declared-dead");
        // Why ownership moved: the first events that say so, for the reader.
        var causes = events.Where(e => e.Event.Kind is "peer-dead" or "stall" or "state" or "released-all" && !(e.Event.Kind == "state" && e.Event.Text("reason") is "waiting-for-first-probe" or "health-passing"))
            .Take(12).Select(e => $"node {e.Node}: {e.Event}").ToArray();
        var ok = results.Connects.Count(c => c.Outcome == TrafficOutcome.Ok);
        return new SoakResult(setting, length.TotalSeconds, deaths, changesAfter - changesBefore, ok, results.Connects.Count - ok, Math.Round(gbit, 2),
            cpu[..3], cpu[3..], File.ReadAllText("/proc/loadavg").Trim(), stalls, unhealthy, fenced, causes,
            [.. statuses.Select(st => string.Create(CultureInfo.InvariantCulture,
                $"node {st.NodeId}: first advert {st.Counter("firstAdvertMs")} ms after start, longest loop step {st.Counter("longestEarlyStepMs")} ms in the first 10 s, {st.Counter("longestStepMs")} ms in all"))]);
    }

    private static async Task<long> OwnershipChangesAsync(ClusterLab lab, int[] nodes, CancellationToken ct)
    {
        long total = 0;
        foreach (var k in nodes)
        {
            var r = await lab.RunOnNode(k, "curl", ["-s", "--max-time", "5", $"http://127.0.0.1:{MetricsPort}/metrics"], TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
            var line = r.StdOut.Split('\n').FirstOrDefault(l => l.StartsWith("l2bal_ownership_changes_total ", StringComparison.Ordinal));
            total += line is null ? 0 : long.Parse(line.Split(' ')[1], CultureInfo.InvariantCulture);
        }
        return total;
    }
}

/// <summary>A TCP sink on a lab host that reads and discards, counting bytes (the bench's own process: no Python in the path).</summary>
internal sealed class ByteSink : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;
    private readonly List<Task> _readers = [];
    private long _bytes;

    private ByteSink(Socket listener)
    {
        _listener = listener;
        _accept = AcceptAsync();
    }

    /// <summary>Bytes received so far over every connection.</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    public static ByteSink Start(LabHost host, int port)
    {
        var listener = host.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Bind(new IPEndPoint(IPAddress.Any, port));
        listener.Listen(64);
        return new ByteSink(listener);
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket connection;
            try
            {
                connection = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            lock (_readers)
            {
                _readers.Add(ReadAsync(connection));
            }
        }
    }

    private async Task ReadAsync(Socket connection)
    {
        using (connection)
        {
            var buffer = new byte[256 * 1024];
            try
            {
                int n;
                while ((n = await connection.ReceiveAsync(buffer, SocketFlags.None, _stop.Token).ConfigureAwait(false)) > 0)
                {
                    Interlocked.Add(ref _bytes, n);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                // Stopped, or the sender went away.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _accept.ConfigureAwait(false);
        Task[] readers;
        lock (_readers)
        {
            readers = [.. _readers];
        }
        await Task.WhenAll(readers).ConfigureAwait(false);
        _stop.Dispose();
    }
}
