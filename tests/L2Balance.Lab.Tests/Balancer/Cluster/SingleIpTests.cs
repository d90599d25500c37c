using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using L2Balance.Lab.Cluster;
using L2Balance.Tests.Common;
using Xunit;
using Xunit.Abstractions;

namespace L2Balance.Lab.Tests.Balancer.Cluster;

/// <summary>The three-node cluster with every proxy's external address set to the VIP (issue 18).</summary>
public class SingleIpClusterFixture : BalancerClusterFixtureBase
{
    /// <summary>Port of the proxy metrics a test turns on (on the node's loopback).</summary>
    public const int ProxyMetricsPort = 9201;

    public SingleIpClusterFixture()
    {
        SingleIp = true;
        BalancerArgs = ["--advert-interval", "50ms", "--dead-after", "6"];
    }
}

[CollectionDefinition(Name)]
public sealed class SingleIpClusterGroup : ICollectionFixture<SingleIpClusterFixture>
{
    public const string Name = "single-ip-cluster";
}

/// <summary>
/// Single-IP mode (docs/design.md#single-ip-mode) for one VIP family: targets see the VIP for every
/// session of every node, each node's outgoing ports come from its slice, replies are taken by slice on
/// one node only, and a failover and a hand-back keep the sessions of every node. Run for IPv4 by
/// <see cref="SingleIpTests"/> and for IPv6 (external = the IPv6 VIP, IPv6 clients and target) by
/// <see cref="SingleIp6Tests"/> (docs/design.md#the-ip6-filter).
/// </summary>
public abstract class SingleIpTestsBase<TFixture>(TFixture fixture, ITestOutputHelper output, bool ipv6) : IAsyncLifetime
    where TFixture : BalancerClusterFixtureBase
{
    private protected static readonly TimeSpan RunBound = TimeSpan.FromSeconds(60);
    private protected static readonly TimeSpan Step = TimeSpan.FromSeconds(10);

    private protected TFixture Fixture => fixture;

    private protected ITestOutputHelper Output => output;

    private protected ClusterLab Lab => fixture.Lab;

    /// <summary>The VIP of the family: every proxy's external address for it.</summary>
    private protected IPAddress Vip => ipv6 ? ClusterLab.Vip6Address : ClusterLab.VipAddress;

    /// <summary>The target of the family (its servers listen on both).</summary>
    private protected IPAddress Target => ipv6 ? ClusterLab.Target6Address : ClusterLab.TargetAddress;

    private protected AddressFamily Family => ipv6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork;

    /// <summary>The client addresses of the family.</summary>
    private protected IReadOnlyList<IPAddress> Sources => ClusterScenarios.Sources(Lab, ipv6);

    public Task InitializeAsync() => fixture.RestoreAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Connect_FromSixtyClientsThroughThreeNodes_TargetSeesOnlyTheVip()
    {
        var owners = await fixture.OwnersAsync(1, Sources);
        Assert.Equal([1, 2, 3], owners.Values.Distinct().Order());
        var before = await KernelAsync();

        using var detector = await DuplicateAnswerDetector.StartAsync(Lab, ipv6);
        // Bounded in count first, time second (ClusterScenarios): every client twice however loaded the machine is.
        var options = fixture.Traffic(TimeSpan.FromSeconds(10), ipv6: ipv6, target: Target) with { MaxConnects = 2 * BalancerClusterFixtureBase.ClientCount };
        var results = await new TrafficGenerator(Lab.Client, options).RunAsync().WithTimeout(RunBound);
        var seen = await detector.StopAsync();
        var after = await KernelAsync();
        output.WriteLine($"{results.Summary()}\n{seen.Summary()}");
        var why = $"{results.Summary()}\n{seen.Summary()}\n{fixture.Describe()}";

        // Every CONNECT succeeded on its client's owner, and its bound address (the VIP) has a port of that owner's slice.
        Assert.True(results.Connects.Count >= 2 * BalancerClusterFixtureBase.ClientCount, why);
        LabAssert.All(results.Connects, c => c.Outcome == TrafficOutcome.Ok && c.Node == owners[c.Source], c => $"{c} (owner {owners[c.Source]})\n{why}");
        seen.AssertSingleAnswers(fixture.Describe);

        // The target's own record of its peers: the VIP only, each port in a slice.
        var peers = EchoPeers();
        Assert.True(peers.Count >= results.Connects.Count(c => c.Outcome == TrafficOutcome.Ok), $"{peers.Count} peers recorded\n{why}");
        LabAssert.All(peers, p => p.Address.Equals(Vip) && ClusterPortSlice.NodeOfPort(p.Port, BalancerClusterFixtureBase.NodeCount) is not null,
            p => $"target saw {p}\n{why}");
        Assert.Equal(3, peers.Select(p => ClusterPortSlice.NodeOfPort(p.Port, BalancerClusterFixtureBase.NodeCount)).Distinct().Count());

        // Replies reach every node (cluster MAC): the owner of the slice takes them, the others drop them by slice.
        for (var k = 1; k <= BalancerClusterFixtureBase.NodeCount; k++)
        {
            Assert.True(after[k].OtherSlice > before[k].OtherSlice, $"node {k} dropped no reply of another slice\n{why}");
            // No node holds conntrack state for another node's target-side flows.
            var foreign = await ForeignTargetFlowsAsync(k);
            Assert.True(foreign.Count == 0, $"node {k} has conntrack entries of other slices:\n{string.Join('\n', foreign)}");
        }
    }

    /// <summary>
    /// The moves of a failover: node 2's l2bal dies and a survivor covers its client, which then opens a
    /// UDP association and a BIND there (ports of the cover's slice); node 2 rejoins and takes the
    /// bucket back, and both keep working on the cover, taken there by slice and dropped by node 2. A
    /// client of node 1, whose sessions stay put while buckets move around them, works throughout.
    /// </summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task UdpAssociateAndBind_AcrossFailoverAndHandBack_StayOnTheirSlicesNode()
    {
        var owners = await fixture.OwnersAsync(1, Sources);
        var moved = Sources.First(a => owners[a.ToString()] == 2);
        var staying = Sources.First(a => owners[a.ToString()] == 1);
        using var stay = await UdpAndBindAsync(staying);
        // A TCP session of the staying client too: to the target from the VIP, a port of node 1's slice.
        using var kept = await RequestAsync(staying, 1, new IPEndPoint(Target, TargetServers.TcpEchoPort));
        Assert.True(kept.Code == 0 && kept.Bound.Address.Equals(Vip) && ClusterPortSlice.NodeOfPort(kept.Bound.Port, 3) == 1, $"CONNECT {kept.Code} {kept.Bound}");
        Assert.True(ClusterPortSlice.NodeOfPort(stay.Association.Bound.Port, 3) == 1 && ClusterPortSlice.NodeOfPort(stay.Bind.Bound.Port, 3) == 1,
            $"{stay.Association.Bound} {stay.Bind.Bound}");
        await EchoUdpAsync(stay.Udp, stay.Association.Bound, "before");
        await EchoTcpAsync(kept, "before");

        // Failover: SIGKILL of node 2's l2bal; nodes 1 and 3 cover its buckets.
        var l2bal = Lab.Balancer(2)!;
        l2bal.Kill(LabSignals.Kill);
        Assert.True(await l2bal.WaitForExitAsync(Step), fixture.Describe());
        await fixture.WaitForStatusAsync([1, 3], s => s.Values.All(v => v.PeerStates[2] == "dead" && v.OwnedBy(2) == 0 && v.Owners.GetValueOrDefault("none") == 0),
            "nodes 1 and 3 cover node 2's buckets");
        var cover = await fixture.OwnerAsync(1, moved);
        Assert.True(cover is 1 or 3, $"{moved} is covered by {cover}");
        await EchoUdpAsync(stay.Udp, stay.Association.Bound, "covered");
        await EchoTcpAsync(kept, "covered");
        using var move = await UdpAndBindAsync(moved);
        Assert.True(ClusterPortSlice.NodeOfPort(move.Association.Bound.Port, 3) == cover && ClusterPortSlice.NodeOfPort(move.Bind.Bound.Port, 3) == cover,
            $"cover {cover}: {move.Association.Bound} {move.Bind.Bound}");
        await EchoUdpAsync(move.Udp, move.Association.Bound, "covered");

        // Hand-back: node 2 rejoins and takes its buckets again.
        fixture.StartBalancer(2);
        await fixture.WaitAllUpAsync();
        Assert.Equal(2, await fixture.OwnerAsync(1, moved));
        var before = await KernelAsync();

        const int Datagrams = 5;
        for (var i = 0; i < Datagrams; i++)
        {
            await EchoUdpAsync(move.Udp, move.Association.Bound, $"back {i}");
            await EchoUdpAsync(stay.Udp, stay.Association.Bound, $"after {i}");
        }
        await ExchangeOnBindAsync(move.Bind, "moved");
        await ExchangeOnBindAsync(stay.Bind, "stayed");
        await EchoTcpAsync(kept, "handed back");
        var after = await KernelAsync();
        var statuses = await fixture.WaitForStatusAsync([1, 2, 3], _ => true, "status");
        var why = string.Join('\n', after.Select(a => $"node {a.Key}: {before[a.Key]} -> {a.Value}")) + $"\ncover {cover}\n{fixture.Describe()}";

        // Counted: the cover held the moved client's flows (each echo is two packets of established flows to
        // its slice); node 2, the bucket's owner again, and the third node dropped them by slice.
        var third = 4 - cover;
        Assert.True(after[cover].Established - before[cover].Established >= 2 * Datagrams, why);
        Assert.True(after[2].OtherSlice - before[2].OtherSlice >= Datagrams, why);
        Assert.True(after[third].OtherSlice - before[third].OtherSlice >= Datagrams, why);

        // The relays' target side: every UDP flow to the echo port leaves its node from the VIP, on a port of its slice.
        foreach (var k in new[] { 1, cover })
        {
            var flows = await OutboundUdpFlowsAsync(k);
            Assert.True(flows.Count > 0 && flows.All(f => f.Source.Equals(Vip) && ClusterPortSlice.NodeOfPort(f.Port, 3) == k),
                $"node {k}: {string.Join(", ", flows)}\n{why}");
        }

        // Every node's status lists every node's slice (l2proxy --port-range on that node).
        var expected = Enumerable.Range(1, 3).Select(k => (k, ClusterPortSlice.For(k, 3))).ToArray();
        LabAssert.All(statuses.Values, s => s.Slices.OrderBy(n => n.Key).Select(n => (n.Key, n.Value)).SequenceEqual(expected), s => s.Json);
    }

    /// <summary>A SOCKS5 request from <paramref name="source"/> through the VIP, and its first reply.</summary>
    private protected async Task<Session> RequestAsync(IPAddress source, byte command, IPEndPoint destination)
    {
        var socket = Lab.Client.OpenSocket(Family, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(source, 0));
            await socket.ConnectAsync(ipv6 ? ClusterLab.ProxyEndPoint6 : Lab.ProxyEndPoint).WithTimeout(Step);
            var (code, bound) = await Socks5Client.HandshakeAsync(socket, command, destination).WithTimeout(Step);
            return new Session(socket, code, bound);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>A UDP association (with the client's UDP socket) and a BIND from <paramref name="source"/>, both granted.</summary>
    private protected async Task<UdpAndBind> UdpAndBindAsync(IPAddress source)
    {
        var association = await RequestAsync(source, 3, new IPEndPoint(ipv6 ? IPAddress.IPv6Any : IPAddress.Any, 0));
        var udp = Lab.Client.OpenSocket(Family, SocketType.Dgram, ProtocolType.Udp);
        udp.Bind(new IPEndPoint(source, 0));
        var bind = await RequestAsync(source, 2, new IPEndPoint(Target, 0));
        var sessions = new UdpAndBind(association, udp, bind);
        if (association.Code != 0 || bind.Code != 0)
        {
            sessions.Dispose();
            Assert.Fail($"from {source}: UDP ASSOCIATE {association.Code}, BIND {bind.Code}");
        }
        return sessions;
    }

    /// <summary>The target connects to the BIND's address; the second reply comes and bytes reach the client.</summary>
    private protected async Task ExchangeOnBindAsync(Session bind, string text)
    {
        using var data = await Lab.Target.ConnectTcpAsync(bind.Bound, Step);
        var (code, peer) = await Socks5Client.ReadReplyAsync(bind.Socket).WithTimeout(Step);
        Assert.True(code == 0 && peer.Port == ((IPEndPoint)data.LocalEndPoint!).Port, $"BIND {bind.Bound}: second reply {code} {peer}");
        var payload = System.Text.Encoding.ASCII.GetBytes(text);
        await data.SendAsync(payload);
        Assert.Equal(payload, await Socks5Client.ReadExactlyAsync(bind.Socket, payload.Length).WithTimeout(Step));
    }

    /// <summary>Bytes through a CONNECT to the target's TCP echo come back.</summary>
    private protected static async Task EchoTcpAsync(Session connect, string text)
    {
        var payload = System.Text.Encoding.ASCII.GetBytes(text);
        await connect.Socket.SendAsync(payload);
        Assert.Equal(payload, await Socks5Client.ReadExactlyAsync(connect.Socket, payload.Length).WithTimeout(Step));
    }

    private protected async Task EchoUdpAsync(Socket udp, IPEndPoint relay, string text)
    {
        var payload = System.Text.Encoding.ASCII.GetBytes(text);
        var datagram = Socks5Client.WrapUdp(new IPEndPoint(Target, TargetServers.UdpEchoPort), payload);
        var buffer = new byte[1024];
        for (var attempt = 0; attempt < 5; attempt++)
        {
            await udp.SendToAsync(datagram, relay);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            try
            {
                var n = await udp.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                Assert.Equal(text, System.Text.Encoding.ASCII.GetString(Socks5Client.UnwrapUdp(buffer.AsSpan(0, n))));
                return;
            }
            catch (OperationCanceledException)
            {
            }
        }
        Assert.Fail($"no UDP echo of '{text}' through {relay}\n{fixture.Describe()}");
    }

    private protected async Task<string> ScrapeProxyAsync(int k)
    {
        var scrape = await Lab.RunOnNode(k, "curl", ["-sS", "-m", "5", $"http://127.0.0.1:{SingleIpClusterFixture.ProxyMetricsPort}/metrics"]).WithTimeout(Step);
        Assert.True(scrape.Succeeded, scrape.ToString());
        return scrape.StdOut;
    }

    /// <summary>Where the target servers' logs end now, for <see cref="EchoPeers"/> to read only what follows.</summary>
    private protected int[] EchoLogMark() => [.. Lab.Servers!.Processes.Select(p => p.Log.Length)];

    /// <summary>
    /// Every peer the target's TCP echo server logged (it logs each connection as it ends), but the lab's own readiness probes from
    /// the target's loopback; only after <paramref name="since"/> when given (the fixture's earlier tests used the same ports).
    /// </summary>
    private protected List<IPEndPoint> EchoPeers(int[]? since = null)
    {
        var log = string.Join('\n', Lab.Servers!.Processes.Select((p, i) => since is null || i >= since.Length ? p.Log : p.Log[Math.Min(since[i], p.Log.Length)..]));
        return [.. SingleIpPatterns.EchoLine().Matches(log)
            .Select(m => new IPEndPoint(OutboundAddressOf(IPAddress.Parse(m.Groups["a"].Value)), int.Parse(m.Groups["p"].Value, CultureInfo.InvariantCulture)))
            .Where(p => !IPAddress.IsLoopback(p.Address))];
    }

    /// <summary>The counters of <paramref name="nodes"/> (every node when none is given): drops by slice (netdev and ip tables together), packets of flows held.</summary>
    private protected async Task<Dictionary<int, (long OtherSlice, long SliceMidFlow, long Established)>> KernelAsync(params int[] nodes)
    {
        var counters = new Dictionary<int, (long, long, long)>();
        foreach (var k in nodes.Length > 0 ? nodes : Enumerable.Range(1, BalancerClusterFixtureBase.NodeCount))
        {
            var s = await fixture.StatusAsync(k);
            counters[k] = (s.Kernel("droppedOtherSlice"), s.Kernel("droppedSliceMidFlow"), s.Kernel("acceptedEstablished"));
        }
        return counters;
    }

    /// <summary>The target's TCP counter <c>TcpExt.NAME</c> (/proc/net/netstat of its namespace).</summary>
    private protected async Task<long> TargetTcpExtAsync(string name)
    {
        var netstat = await Lab.Target.RunAsync("cat", ["/proc/net/netstat"], Step).WithTimeout(Step);
        Assert.True(netstat.Succeeded, netstat.ToString());
        var lines = netstat.StdOut.Split('\n').Where(l => l.StartsWith("TcpExt:", StringComparison.Ordinal)).Select(l => l.Split(' ')).ToArray();
        Assert.True(lines.Length == 2, netstat.StdOut);
        var column = Array.IndexOf(lines[0], name);
        Assert.True(column > 0, $"no TcpExt {name} in\n{netstat.StdOut}");
        return long.Parse(lines[1][column], CultureInfo.InvariantCulture);
    }

    /// <summary>Node k's conntrack entries from the VIP to the target whose source port lies in another node's slice.</summary>
    private protected async Task<List<string>> ForeignTargetFlowsAsync(int k) =>
        [.. (await TargetFlowsAsync(k)).Where(f => f.Source.Equals(Vip) && ClusterPortSlice.NodeOfPort(f.SourcePort, 3) is { } owner && owner != k).Select(f => f.Line)];

    /// <summary>Node k's conntrack entries of UDP flows it sent to the target's echo port: their source address and port.</summary>
    private protected async Task<List<(IPAddress Source, int Port)>> OutboundUdpFlowsAsync(int k) =>
        [.. (await TargetFlowsAsync(k)).Where(f => f.Udp && f.DestinationPort == TargetServers.UdpEchoPort).Select(f => (f.Source, f.SourcePort))];

    /// <summary>Node k's conntrack entries whose original direction goes to the family's target (IPv6 addresses as the kernel prints them, uncompressed).</summary>
    private async Task<List<(IPAddress Source, int SourcePort, int DestinationPort, bool Udp, string Line)>> TargetFlowsAsync(int k)
    {
        var table = await Lab.RunOnNode(k, "cat", ["/proc/net/nf_conntrack"]).WithTimeout(Step);
        Assert.True(table.Succeeded, table.ToString());
        return [.. SingleIpPatterns.ConntrackLine().Matches(table.StdOut)
            .Where(m => IPAddress.Parse(m.Groups["dst"].Value).Equals(Target))
            .Select(m => (IPAddress.Parse(m.Groups["src"].Value), Port(m, "sport"), Port(m, "dport"), m.Groups["proto"].Value == "udp", m.Value))];

        static int Port(Match m, string name) => int.Parse(m.Groups[name].Value, CultureInfo.InvariantCulture);
    }

    /// <summary>An address as the dual-stack target logs it (IPv4 peers mapped), in its own family.</summary>
    private static IPAddress OutboundAddressOf(IPAddress logged) => logged.IsIPv4MappedToIPv6 ? logged.MapToIPv4() : logged;

    /// <summary>One client's UDP association, its UDP socket, and its BIND.</summary>
    private protected sealed record UdpAndBind(Session Association, Socket Udp, Session Bind) : IDisposable
    {
        public void Dispose()
        {
            Association.Dispose();
            Udp.Dispose();
            Bind.Dispose();
        }
    }

    /// <summary>A client's control connection and the proxy's first reply.</summary>
    private protected sealed record Session(Socket Socket, byte Code, IPEndPoint Bound) : IDisposable
    {
        public void Dispose() => Socket.Dispose();
    }
}

/// <summary>
/// Single-IP mode over IPv4: the checks of <see cref="SingleIpTestsBase{TFixture}"/>, and those run for
/// IPv4 only (the code is the same for both families): CONNECT then BIND, a drain, a slice that runs out
/// refusing clearly, a restart, the silent drop of a mid-flow packet.
/// </summary>
[Collection(SingleIpClusterGroup.Name)]
public sealed class SingleIpTests(SingleIpClusterFixture fixture, ITestOutputHelper output) : SingleIpTestsBase<SingleIpClusterFixture>(fixture, output, ipv6: false)
{
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task ConnectThenBind_FromOneClient_ShowTheSameExternalAddress()
    {
        var source = Lab.ClientAddresses[7];
        using var listener = Lab.Target.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(ClusterLab.TargetAddress, 0));
        listener.Listen(4);
        var control = (IPEndPoint)listener.LocalEndPoint!;

        // The FTP-style sequence: a control connection by CONNECT, then a BIND for the data connection.
        using var connect = await RequestAsync(source, 1, control);
        using var seenByTarget = await listener.AcceptAsync().WithTimeout(Step);
        using var bind = await RequestAsync(source, 2, new IPEndPoint(ClusterLab.TargetAddress, 0));
        using var data = await Lab.Target.ConnectTcpAsync(bind.Bound, Step);
        var (code, peer) = await Socks5Client.ReadReplyAsync(bind.Socket).WithTimeout(Step);
        var why = $"CONNECT bound {connect.Bound}, target saw {seenByTarget.RemoteEndPoint}; BIND {bind.Bound}, second reply {code} {peer}\n{Fixture.Describe()}";

        Assert.True(connect.Code == 0 && bind.Code == 0 && code == 0, why);
        var external = ((IPEndPoint)seenByTarget.RemoteEndPoint!).Address;
        Assert.True(external.Equals(ClusterLab.VipAddress) && bind.Bound.Address.Equals(external) && connect.Bound.Address.Equals(external), why);
        Assert.Equal(ClusterPortSlice.NodeOfPort(connect.Bound.Port, 3), ClusterPortSlice.NodeOfPort(bind.Bound.Port, 3));
        Assert.Equal(((IPEndPoint)data.LocalEndPoint!).Port, peer.Port);

        // Bytes flow both ways on the data connection.
        await data.SendAsync("ftp-data"u8.ToArray());
        var got = await Socks5Client.ReadExactlyAsync(bind.Socket, 8).WithTimeout(Step);
        Assert.Equal("ftp-data"u8.ToArray(), got);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task UdpAssociateAndBind_AcrossABucketMove_KeepWorking()
    {
        var owners = await Fixture.OwnersAsync();
        var source = Lab.ClientAddresses.First(a => owners[a.ToString()] == 2);
        using var association = await RequestAsync(source, 3, new IPEndPoint(IPAddress.Any, 0));
        Assert.Equal(0, association.Code);
        using var udp = Lab.Client.OpenSocket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        udp.Bind(new IPEndPoint(source, 0));
        using var bind = await RequestAsync(source, 2, new IPEndPoint(ClusterLab.TargetAddress, 0));
        Assert.Equal(0, bind.Code);
        Assert.Equal(2, ClusterPortSlice.NodeOfPort(bind.Bound.Port, 3));
        await EchoUdpAsync(udp, association.Bound, "before");

        // Node 2 drains: its buckets move to nodes 1 and 3; its sessions stay, by conntrack and by slice.
        var drain = await Lab.RunOnNode(2, ClusterBinaries.L2Bal, ["drain"]).WithTimeout(Step);
        Assert.True(drain.Succeeded, drain.ToString());
        await Fixture.WaitForStatusAsync([1, 3], s => s.Values.All(v => v.OwnedBy(2) == 0), "node 2's buckets covered");
        Assert.NotEqual(2, await Fixture.OwnerAsync(1, source));

        await EchoUdpAsync(udp, association.Bound, "after");
        using var data = await Lab.Target.ConnectTcpAsync(bind.Bound, Step);
        var (code, _) = await Socks5Client.ReadReplyAsync(bind.Socket).WithTimeout(Step);
        Assert.Equal(0, code);
        await data.SendAsync("moved"u8.ToArray());
        Assert.Equal("moved"u8.ToArray(), await Socks5Client.ReadExactlyAsync(bind.Socket, 5).WithTimeout(Step));
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Connect_TinyPortRange_RefusesWithGeneralFailureAndCounts()
    {
        var owners = await Fixture.OwnersAsync();
        var source = Lab.ClientAddresses.First(a => owners[a.ToString()] == 1);
        var (low, _) = ClusterPortSlice.For(1, 3);
        var old = Lab.Proxy(1)!;
        old.Stop();
        Assert.True(await old.WaitForExitAsync(Step), Fixture.Describe());
        var tiny = Lab.StartProxyWithRange(1, $"{low}-{low + 1}", "--metrics", $"127.0.0.1:{SingleIpClusterFixture.ProxyMetricsPort}");
        try
        {
            await Fixture.WaitAllUpAsync();
            var echo = new IPEndPoint(ClusterLab.TargetAddress, TargetServers.TcpEchoPort);
            var held = new List<Session>();
            try
            {
                // Two ports: two sessions to one target endpoint hold both; the third has none.
                held.Add(await RequestAsync(source, 1, echo));
                held.Add(await RequestAsync(source, 1, echo));
                using var third = await RequestAsync(source, 1, echo);
                var metrics = await ScrapeProxyAsync(1);
                var why = $"{string.Join(", ", held.Select(h => $"{h.Code} {h.Bound}"))}; third {third.Code}\n{metrics}\n{tiny.Describe()}";

                Assert.True(held.All(h => h.Code == 0 && h.Bound.Port >= low && h.Bound.Port <= low + 1), why);
                Assert.True(third.Code == 1, why);
                Assert.Matches(@"(?m)^l2proxy_port_range_exhausted_total\{reason=""connect""\} 1$", metrics);
                Assert.Matches(@$"(?m)^l2proxy_port_range_in_use\{{range=""{low}-{low + 1}""\}} 2$", metrics);

                // Another target endpoint: the kernel reuses the ports (one per 4-tuple).
                using var other = await RequestAsync(source, 1, new IPEndPoint(ClusterLab.TargetAddress, TargetServers.HttpPort));
                Assert.True(other.Code == 0, why);
            }
            finally
            {
                held.ForEach(h => h.Dispose());
            }
        }
        finally
        {
            tiny.Stop();
            await tiny.WaitForExitAsync(Step);
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task NodeKilledAndRestarted_FlowsOpenElsewhere_NoCollisionNoReset()
    {
        var owners = await Fixture.OwnersAsync();
        var echo = new IPEndPoint(ClusterLab.TargetAddress, TargetServers.TcpEchoPort);

        // Three long sessions per node, to one target endpoint.
        var sessions = new List<Session>();
        try
        {
            foreach (var group in Lab.ClientAddresses.GroupBy(a => owners[a.ToString()]))
            {
                foreach (var source in group.Take(3))
                {
                    sessions.Add(await RequestAsync(source, 1, echo));
                }
            }
            Assert.True(sessions.All(s => s.Code == 0), string.Join(", ", sessions.Select(s => $"{s.Code} {s.Bound}")));
            // A SYN to a 4-tuple the target holds open gets a challenge ACK (RFC 5961): the target counts each.
            var challengesBefore = await TargetTcpExtAsync("TCPChallengeACK");

            // SIGKILL of node 2's l2bal (its tables go: nothing reaches its stack) and proxy, then both start again.
            Lab.Balancer(2)!.Kill(LabSignals.Kill);
            Lab.Proxy(2)!.Kill(LabSignals.Kill);
            await Lab.Proxy(2)!.WaitForExitAsync(Step);
            await Lab.Balancer(2)!.WaitForExitAsync(Step);
            Fixture.StartBalancer(2);
            await Fixture.StartProxyAsync(2);
            await Fixture.WaitAllUpAsync();

            var logMark = EchoLogMark();
            using var detector = await DuplicateAnswerDetector.StartAsync(Lab);
            var results = await new TrafficGenerator(Lab.Client, Fixture.Traffic(TimeSpan.FromSeconds(3))).RunAsync().WithTimeout(RunBound);
            var seen = await detector.StopAsync();
            var why = $"{results.Summary()}\n{seen.Summary()}\n{Fixture.Describe()}";
            Output.WriteLine(why);

            // The survivors' sessions still echo; node 2's died with it.
            foreach (var s in sessions.Where(s => ClusterPortSlice.NodeOfPort(s.Bound.Port, 3) != 2))
            {
                await s.Socket.SendAsync("alive"u8.ToArray());
                Assert.Equal("alive"u8.ToArray(), await Socks5Client.ReadExactlyAsync(s.Socket, 5).WithTimeout(Step));
            }

            // No new flow took a source port still open to the same target endpoint (the target logs each
            // flow it saw end, by peer), and none failed.
            var open = sessions.Where(s => ClusterPortSlice.NodeOfPort(s.Bound.Port, 3) != 2).Select(s => s.Bound.Port).ToHashSet();
            var collisions = EchoPeers(logMark).Count(p => open.Contains(p.Port));
            LabAssert.All(results.Connects, c => c.Outcome == TrafficOutcome.Ok && c.Node == owners[c.Source], c => $"{c}\n{why}");
            Assert.True(collisions == 0, $"{collisions} collisions\n{why}");
            var challenges = await TargetTcpExtAsync("TCPChallengeACK") - challengesBefore;
            Assert.True(challenges == 0, $"the target sent {challenges} challenge ACKs: a SYN met a 4-tuple it held\n{why}");
            seen.AssertSingleAnswers(Fixture.Describe);
        }
        finally
        {
            sessions.ForEach(s => s.Dispose());
        }
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task MidFlowPacket_ToTheOwnSliceOfNoKnownFlow_IsDroppedSilentlyAndCounted()
    {
        // As after a restart: the target sends an ACK of a flow no node holds to a port of node 1's slice.
        var (low, _) = ClusterPortSlice.For(1, 3);
        var port = low + 777;
        var before = await KernelAsync();
        var script = $$"""
            import socket, struct, time
            def csum(b):
                if len(b) % 2: b += b"\0"
                s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
                s = (s >> 16) + (s & 0xffff); s += s >> 16
                return ~s & 0xffff
            src, dst = "{{ClusterLab.TargetAddress}}", "{{ClusterLab.VipAddress}}"
            rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
            rx.settimeout(0.2)
            tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            resets = 0
            for i in range(5):
                tcp = struct.pack("!HHIIBBHHH", 7000, {{port}}, 1000 + i, 5000, 5 << 4, 0x10, 65535, 0, 0)
                pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
                tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i, 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
                tx.sendto(ip + tcp, (dst, 0))
                end = time.time() + 0.2
                while time.time() < end:
                    try:
                        pkt = rx.recv(2048)
                    except socket.timeout:
                        break
                    sport, dport, flags = struct.unpack("!HH", pkt[20:24]) + (pkt[33],)
                    if pkt[12:16] == socket.inet_aton(dst) and sport == {{port}} and flags & 0x04:
                        resets += 1
            print(f"resets {resets}")
            """;
        var run = await Lab.Target.RunAsync("python3", ["-c", script], Step);
        var after = await KernelAsync();
        var why = $"{run}\nnode 1 slice mid-flow {before[1].SliceMidFlow} -> {after[1].SliceMidFlow}";

        Assert.True(run.Succeeded && run.StdOut.Contains("resets 0", StringComparison.Ordinal), why);
        Assert.True(after[1].SliceMidFlow - before[1].SliceMidFlow >= 5, why);
    }
}

/// <summary>The conntrack and target log lines single-IP tests read.</summary>
internal static partial class SingleIpPatterns
{
    [GeneratedRegex(@"tcp-echo (?<a>[0-9a-f:.]+):(?<p>\d+) echoed")]
    internal static partial Regex EchoLine();

    // ipv6 10 udp 17 29 src=fdc6:1200:0010:0000:0000:0000:0000:000a dst=fdc6:1200:0128:… sport=41000 dport=7001 …: the original direction.
    [GeneratedRegex(@"(?m)^ipv[46]\s+\d+\s+(?<proto>tcp|udp)\s+\d+\s+\d+\s+(?:[A-Z_]+\s+)?src=(?<src>[0-9a-f.:]+) dst=(?<dst>[0-9a-f.:]+) sport=(?<sport>\d+) dport=(?<dport>\d+)")]
    internal static partial Regex ConntrackLine();

}
