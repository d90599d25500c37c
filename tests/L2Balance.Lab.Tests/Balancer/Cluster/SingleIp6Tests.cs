using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using L2Balance.Lab.Cluster;
using L2Balance.Tests.Common;
using Xunit;
using Xunit.Abstractions;

namespace L2Balance.Lab.Tests.Balancer.Cluster;

/// <summary>
/// The dual-stack cluster in single-IP mode (every proxy's external addresses are the two VIPs), with two
/// ports of other affinity modes on the IPv6 VIP: the proxy also listens on <see cref="NetworkPort"/>
/// (<c>tcp/1081=network</c>, clients grouped by /56) and every node runs a UDP responder on
/// <see cref="NonePort"/> (<c>udp/5300=none</c>). Clients of four more /56s (<see cref="SiteClients"/>)
/// reach the nodes through the router.
/// </summary>
public sealed class SingleIp6ClusterFixture : BalancerClusterFixtureBase
{
    public const int NetworkPort = 1081;
    public const int NonePort = 5300;

    /// <summary>The client prefix every proxy allows: the lab's /64 and the /56s of <see cref="SiteClients"/>.</summary>
    public const string ClientPrefix = "fdc6:1200:64::/48";

    // The UDP responder: answers each datagram with the node's name and the datagram's length; bounded by its lifetime.
    private const string ResponderScript = """
        import os, socket, sys, threading
        node, vip, port, lifetime = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
        threading.Timer(lifetime, lambda: os._exit(0)).start()
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, 78, 1)   # IPV6_FREEBIND: l2bal puts the VIP on lo later
        s.bind((vip, port))
        print(f"udp responder on [{vip}]:{port}", flush=True)
        while True:
            data, peer = s.recvfrom(65535)
            s.sendto(f"n{node} {len(data)}".encode(), peer)
        """;

    public SingleIp6ClusterFixture()
    {
        SingleIp = true;
        DualStack = true;
        BalancerArgs =
        [
            "--advert-interval", "50ms", "--dead-after", "6",
            "--service", $"tcp/{ClusterLab.ProxyPort}", "--service", $"tcp/{NetworkPort}", "--service", $"udp/{NonePort}",
            "--affinity", $"tcp/{NetworkPort}=network", "--affinity", $"udp/{NonePort}=none",
        ];
    }

    /// <summary>Five clients in each of the /56s fdc6:1200:64:100::/56 … fdc6:1200:64:400::/56 (the lab's own clients are in fdc6:1200:64::/56).</summary>
    public static IReadOnlyList<IPAddress> SiteClients { get; } =
        [.. Enumerable.Range(1, 4).SelectMany(site => Enumerable.Range(0x10, 5).Select(i => IPAddress.Parse($"fdc6:1200:64:{site}00::{i:x}")))];

    protected override async Task PrepareAsync()
    {
        foreach (var a in SiteClients)
        {
            Lab.Client.AddAddress("eth0", $"{a}/64");
        }

        // The router reaches them on its client side by neighbour discovery.
        (await Lab.Router.RunAsync("ip", ["-6", "route", "add", ClientPrefix, "dev", "eth1"], Deadline).WithTimeout(Deadline)).EnsureSuccess();
        var lifetime = ((int)TargetServers.Lifetime.TotalSeconds).ToString(CultureInfo.InvariantCulture);
        for (var k = 1; k <= NodeCount; k++)
        {
            Lab.Nodes[k - 1].Start(LabBinaries.Require("/usr/bin/python3", "python3"), "-c", ResponderScript,
                k.ToString(CultureInfo.InvariantCulture), ClusterLab.Vip6Address.ToString(), NonePort.ToString(CultureInfo.InvariantCulture), lifetime);
        }
    }

    protected override LabProcess StartNodeProxy(int k) =>
        Lab.StartProxy(k, "--listen", $"[{ClusterLab.Vip6Address}]:{NetworkPort}", "--allow", ClientPrefix);
}

[CollectionDefinition(Name)]
public sealed class SingleIp6ClusterGroup : ICollectionFixture<SingleIp6ClusterFixture>
{
    public const string Name = "single-ip6-cluster";
}

/// <summary>
/// Single-IP mode, per-port affinity and fragments over IPv6 (docs/design.md#single-ip-mode-affinity-and-fragments-over-ipv6):
/// IPv6 clients through the IPv6 VIP to the target's IPv6 address, which sees only the IPv6 VIP, on ports of
/// each node's slice (the checks of <see cref="SingleIpTestsBase{TFixture}"/>); a port of mode <c>network</c>
/// groups clients by /56 on the node <c>l2bal owner --port</c> names; a UDP port of mode <c>none</c> spreads
/// one client's flows, each answered by the node of its (address, port), also when the datagram arrives in fragments.
/// </summary>
[Collection(SingleIp6ClusterGroup.Name)]
public sealed class SingleIp6Tests(SingleIp6ClusterFixture fixture, ITestOutputHelper output) : SingleIpTestsBase<SingleIp6ClusterFixture>(fixture, output, ipv6: true)
{
    /// <summary>The ip6 table itself drops the replies of other slices on the node that owns the target's bucket.</summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Reply6_ToAnotherNodesSlice_IsDroppedByTheIp6TableOfTheTargetsOwner()
    {
        var targetOwner = await Fixture.OwnerAsync(1, ClusterLab.Target6Address);
        var other = targetOwner % 3 + 1;
        var owners = await Fixture.OwnersAsync(1, Sources);
        var source = Sources.First(a => owners[a.ToString()] == other);
        var before = (await Fixture.StatusAsync(targetOwner)).Kernel6("droppedOtherSlice");

        using var connect = await RequestAsync(source, 1, new IPEndPoint(Target, TargetServers.TcpEchoPort));
        Assert.True(connect.Code == 0 && connect.Bound.Address.Equals(Vip) && ClusterPortSlice.NodeOfPort(connect.Bound.Port, 3) == other, $"{connect.Code} {connect.Bound}");
        await EchoTcpAsync(connect, "through another node's slice");
        var after = (await Fixture.StatusAsync(targetOwner)).Kernel6("droppedOtherSlice");

        // The SYN-ACK and the echo reached node targetOwner through its early drop (its bucket) and stopped in ip6 prerouting.
        Assert.True(after - before >= 2, $"node {targetOwner}: kernel.ipv6.droppedOtherSlice {before} -> {after}\n{Fixture.Describe()}");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task Connect6_ToAPortOfAffinityNetwork_OneNodePerSlash56NamedByOwnerPort()
    {
        var port = $"tcp/{SingleIp6ClusterFixture.NetworkPort}";
        IReadOnlyList<IPAddress> sources = [.. SingleIp6ClusterFixture.SiteClients, .. Lab.ClientAddresses6.Take(5)];
        var owners = new Dictionary<string, int>();
        foreach (var a in sources)
        {
            owners[a.ToString()] = await Fixture.OwnerAsync(1, a, port);
        }

        var options = Fixture.Traffic(TimeSpan.FromSeconds(10), ipv6: true, target: ClusterLab.Target6Address) with
        {
            Proxy = new IPEndPoint(ClusterLab.Vip6Address, SingleIp6ClusterFixture.NetworkPort),
            Sources = sources,
            MaxConnects = 2 * sources.Count,
        };
        var results = await new TrafficGenerator(Lab.Client, options).RunAsync().WithTimeout(RunBound);
        Output.WriteLine(results.Summary());
        var why = $"{results.Summary()}\nowners {string.Join(", ", owners.Select(o => $"{o.Key}={o.Value}"))}\n{Fixture.Describe()}";

        Assert.True(results.Connects.Count >= sources.Count, why);
        LabAssert.All(results.Connects, c => c.Outcome == TrafficOutcome.Ok && c.Node == owners[c.Source], c => $"{c} (owner --port {port}: {owners[c.Source]})\n{why}");
        // One node per /56, and the /56s do not all share one node (the key is the prefix, not a constant).
        var sites = results.Connects.GroupBy(c => Slash56(IPAddress.Parse(c.Source))).ToList();
        Assert.Equal(5, sites.Count);
        LabAssert.All(sites, g => g.Select(c => c.Node).Distinct().Count() == 1, g => $"/56 {g.Key} served by {string.Join(", ", g.Select(c => c.Node).Distinct())}\n{why}");
        Assert.True(sites.Select(g => g.First().Node).Distinct().Count() > 1, why);
    }

    /// <summary>
    /// 3000-byte datagrams from 60 IPv6 flows (20 addresses × 3 source ports) to <c>udp/5300=none</c>: the client
    /// sends each in fragments, every node gets every fragment, and each datagram is answered whole by exactly
    /// the node <c>l2bal owner --port udp/5300 --source-port P</c> names; the others drop it in ip6 prerouting.
    /// </summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public async Task FragmentedDatagrams6_ToAPortOfAffinityNone_AnsweredWholeByTheFlowsOwnerOnly()
    {
        const int Size = 3000;
        var port = $"udp/{SingleIp6ClusterFixture.NonePort}";
        var flows = Lab.ClientAddresses6.Take(20).SelectMany((a, i) => Enumerable.Range(0, 3).Select(j => new IPEndPoint(a, 21_000 + (3 * i) + j))).ToList();
        var owners = new Dictionary<IPEndPoint, int>();
        foreach (var f in flows)
        {
            owners[f] = await Fixture.OwnerAsync(1, f.Address, port, f.Port);
        }

        Assert.Equal([1, 2, 3], owners.Values.Distinct().Order());
        // One address's flows spread (mode none keys address and port).
        Assert.Contains(flows.GroupBy(f => f.Address), g => g.Select(f => owners[f]).Distinct().Count() > 1);

        var fragmentsBefore = await Snmp6Async(Lab.Client, "Ip6FragCreates");
        var before = await StatelessDropsAsync();
        var answers = await ExchangeAsync(flows, Size);
        var after = await StatelessDropsAsync();
        var fragments = await Snmp6Async(Lab.Client, "Ip6FragCreates") - fragmentsBefore;
        var why = $"fragments created {fragments}\n{string.Join('\n', flows.Select(f => $"{f} owner {owners[f]}: {string.Join(", ", answers[f])}"))}\n{Fixture.Describe()}";

        // Each datagram left the client as at least three fragments (3000 bytes over a 1500-byte MTU).
        Assert.True(fragments >= 3 * flows.Count, why);
        LabAssert.All(flows, f => answers[f].Count > 0 && answers[f].All(a => a == $"n{owners[f]} {Size}"), f => $"{f} (owner {owners[f]}): {string.Join(", ", answers[f])}\n{why}");
        for (var k = 1; k <= 3; k++)
        {
            var others = flows.Count(f => owners[f] != k);
            Assert.True(after[k] - before[k] >= others, $"node {k}: kernel.ipv6.droppedStatelessNotOwned {before[k]} -> {after[k]}, {others} flows of other nodes\n{why}");
        }
    }

    /// <summary>
    /// Sends one datagram of <paramref name="size"/> bytes per flow (again to flows still unanswered, up to three
    /// rounds) and collects every answer for 1 s after each round: each flow's answers, in order.
    /// </summary>
    private async Task<Dictionary<IPEndPoint, List<string>>> ExchangeAsync(IReadOnlyList<IPEndPoint> flows, int size)
    {
        var vip = new IPEndPoint(ClusterLab.Vip6Address, SingleIp6ClusterFixture.NonePort);
        var sockets = new Dictionary<IPEndPoint, Socket>();
        var answers = flows.ToDictionary(f => f, _ => new List<string>());
        try
        {
            foreach (var f in flows)
            {
                var socket = Lab.Client.OpenSocket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp);
                sockets[f] = socket;
                socket.Bind(f);
            }

            var payload = new byte[size];
            for (var round = 0; round < 3 && answers.Values.Any(a => a.Count == 0); round++)
            {
                foreach (var f in flows.Where(f => answers[f].Count == 0))
                {
                    await sockets[f].SendToAsync(payload, vip);
                }

                await Task.WhenAll(flows.Select(async f =>
                {
                    var buffer = new byte[256];
                    using var window = new CancellationTokenSource(TimeSpan.FromSeconds(1));
                    try
                    {
                        while (true)
                        {
                            var n = await sockets[f].ReceiveAsync(buffer, SocketFlags.None, window.Token);
                            lock (answers)
                            {
                                answers[f].Add(Encoding.ASCII.GetString(buffer, 0, n));
                            }
                        }
                    }
                    catch (OperationCanceledException)
                    {
                    }
                })).WithTimeout(TimeSpan.FromSeconds(10));
            }
        }
        finally
        {
            foreach (var s in sockets.Values)
            {
                s.Dispose();
            }
        }

        return answers;
    }

    /// <summary><c>kernel.ipv6.droppedStatelessNotOwned</c> of every node.</summary>
    private async Task<Dictionary<int, long>> StatelessDropsAsync()
    {
        var counts = new Dictionary<int, long>();
        for (var k = 1; k <= 3; k++)
        {
            counts[k] = (await Fixture.StatusAsync(k)).Kernel6("droppedStatelessNotOwned");
        }

        return counts;
    }

    /// <summary>A counter of /proc/net/snmp6 in <paramref name="host"/>'s namespace.</summary>
    private static async Task<long> Snmp6Async(LabHost host, string name)
    {
        var snmp = await host.RunAsync("cat", ["/proc/net/snmp6"], TimeSpan.FromSeconds(10)).WithTimeout(TimeSpan.FromSeconds(10));
        Assert.True(snmp.Succeeded, snmp.ToString());
        var line = snmp.StdOut.Split('\n').Select(l => l.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries)).FirstOrDefault(w => w.Length == 2 && w[0] == name);
        Assert.True(line is not null, $"no {name} in\n{snmp.StdOut}");
        return long.Parse(line[1], CultureInfo.InvariantCulture);
    }

    private static string Slash56(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 7, 9);
        return new IPAddress(bytes).ToString();
    }
}
