using System.Globalization;
using System.Net;
using System.Security.Cryptography;

namespace L2Balance.Lab.Cluster;

/// <summary>
/// The cluster lab: one Ethernet segment (a bridge in a switch namespace) with N nodes and a
/// router, clients behind the router on many source addresses, and a target behind the router
/// running <see cref="TargetServers"/>.
/// <code>
///   client eth0 198.18.64.10..(10+C-1)/24 ── eth1 198.18.64.1  [router]  eth2 198.18.128.1 ── target eth0 198.18.128.2/24
///                                                        eth0 198.18.0.254/24
///                                                              │ p(N+1)
///                                     sw: br0 (mcast_snooping 1, no querier: floods multicast-MAC frames)
///                                        │ p1            │ p2           … │ pN
///                               n1 eth0 198.18.0.1  n2 eth0 198.18.0.2    nN eth0 198.18.0.N   (MAC 02:00:00:00:00:0k)
///                               VIP 198.18.0.10 (placed by l2bal, or statically by a test)
/// </code>
/// Nodes route by default via the router; the router forwards and does no NAT, so nodes and the
/// target see the clients' real source addresses. All from 198.18.0.0/15; a dual-stack lab
/// (<see cref="DualStack"/>) adds the same plan in fdc6:1200::/32: segment fdc6:1200:10::/64 (node k ::k,
/// router ::fe, IPv6 VIP fdc6:1200:10::a), clients fdc6:1200:64::10.. behind fdc6:1200:64::1, target
/// fdc6:1200:128::2 behind fdc6:1200:128::1.
/// </summary>
public sealed class ClusterLab : IAsyncDisposable, IDisposable
{
    /// <summary>At most 9 nodes: 198.18.0.10 is the VIP.</summary>
    public const int MaxNodes = 9;

    /// <summary>At most 244 client addresses (198.18.64.10 … 198.18.64.253).</summary>
    public const int MaxClientAddresses = 244;

    /// <summary>The port every node's proxy listens on at the VIP.</summary>
    public const int ProxyPort = 1080;

    public static readonly IPAddress VipAddress = IPAddress.Parse("198.18.0.10");
    public static readonly IPAddress RouterSegmentAddress = IPAddress.Parse("198.18.0.254");
    public static readonly IPAddress RouterClientSideAddress = IPAddress.Parse("198.18.64.1");
    public static readonly IPAddress RouterTargetSideAddress = IPAddress.Parse("198.18.128.1");
    public static readonly IPAddress TargetAddress = IPAddress.Parse("198.18.128.2");

    /// <summary>The VIP with its segment prefix, as l2bal's <c>--vip</c> takes it.</summary>
    public const string VipCidr = "198.18.0.10/24";

    /// <summary>The IPv6 VIP of a dual-stack lab (a second <c>--vip</c>).</summary>
    public static readonly IPAddress Vip6Address = IPAddress.Parse("fdc6:1200:10::a");

    /// <summary>The IPv6 VIP with its segment prefix.</summary>
    public const string Vip6Cidr = "fdc6:1200:10::a/64";

    /// <summary>The IPv6 client subnet every proxy of a dual-stack lab allows.</summary>
    public const string ClientSubnet6 = "fdc6:1200:64::/64";

    /// <summary>The target's IPv6 address in a dual-stack lab.</summary>
    public static readonly IPAddress Target6Address = IPAddress.Parse("fdc6:1200:128::2");

    /// <summary>The client subnet every proxy allows.</summary>
    public const string ClientSubnet = "198.18.64.0/24";

    private readonly IPAddress _vip = VipAddress;
    private readonly string[] _switchPorts;
    private readonly LabProcess?[] _proxies;
    private readonly LabProcess?[] _balancers;

    private ClusterLab(LabNetwork network, LabHost sw, IReadOnlyList<LabHost> nodes, string[] switchPorts, LabHost router, LabHost client, LabHost target, IReadOnlyList<IPAddress> clientAddresses, IReadOnlyList<IPAddress> clientAddresses6)
    {
        ClientAddresses6 = clientAddresses6;
        Network = network;
        Switch = sw;
        Nodes = nodes;
        _switchPorts = switchPorts;
        Router = router;
        Client = client;
        Target = target;
        ClientAddresses = clientAddresses;
        _proxies = new LabProcess?[nodes.Count];
        _balancers = new LabProcess?[nodes.Count];
    }

    public LabNetwork Network { get; }

    /// <summary>The VIP, 198.18.0.10.</summary>
    public IPAddress Vip => _vip;

    /// <summary>The VIP's SOCKS endpoint, 198.18.0.10:1080.</summary>
    public IPEndPoint ProxyEndPoint => new(_vip, ProxyPort);

    /// <summary>The IPv6 VIP's SOCKS endpoint, [fdc6:1200:10::a]:1080 (dual-stack lab).</summary>
    public static IPEndPoint ProxyEndPoint6 => new(Vip6Address, ProxyPort);

    /// <summary>Whether the lab has the IPv6 plan too: then every proxy listens on the IPv6 VIP, and every l2bal serves it while <see cref="ServeVip6"/>.</summary>
    public bool DualStack => ClientAddresses6.Count > 0;

    /// <summary>In a dual-stack lab, whether l2bal started from now on gets the IPv6 VIP (default true; a bench turns it off for its IPv4-only peer).</summary>
    public bool ServeVip6 { get; set; } = true;

    /// <summary>Whether every l2bal serves the IPv4 VIP; false in a dual-stack lab: an IPv6 VIP alone (docs/design.md#an-ipv6-vip-alone).</summary>
    public bool ServeVip4 { get; set; } = true;

    /// <summary>The client's IPv6 source addresses, fdc6:1200:64::10 upwards (as many as the IPv4 ones); empty unless dual-stack.</summary>
    public IReadOnlyList<IPAddress> ClientAddresses6 { get; }

    /// <summary>The switch namespace (bridge br0).</summary>
    public LabHost Switch { get; }

    /// <summary>Nodes n1..nN; node k (1-based) is <c>Nodes[k - 1]</c>.</summary>
    public IReadOnlyList<LabHost> Nodes { get; }

    public LabHost Router { get; }

    public LabHost Client { get; }

    public LabHost Target { get; }

    /// <summary>The target's HTTP, TCP echo and UDP echo servers (null if not started).</summary>
    public TargetServers? Servers { get; private set; }

    /// <summary>The client's source addresses, 198.18.64.10 upwards.</summary>
    public IReadOnlyList<IPAddress> ClientAddresses { get; }

    /// <summary>Where the lab wrote the cluster key (created on the first <see cref="StartBalancer"/>).</summary>
    public string? KeyFile { get; private set; }

    /// <summary>The last proxy started on node k (1-based), or null.</summary>
    public LabProcess? Proxy(int nodeId) => _proxies[CheckNode(nodeId) - 1];

    /// <summary>The last l2bal started on node k (1-based), or null.</summary>
    public LabProcess? Balancer(int nodeId) => _balancers[CheckNode(nodeId) - 1];

    /// <summary>Node k's own address, 198.18.0.k.</summary>
    public static IPAddress NodeAddress(int nodeId) => IPAddress.Parse($"198.18.0.{nodeId}");

    /// <summary>Node k's own IPv6 address in a dual-stack lab, fdc6:1200:10::k.</summary>
    public static IPAddress NodeAddress6(int nodeId) => IPAddress.Parse($"fdc6:1200:10::{nodeId:x}");

    /// <summary>Node k's MAC, 02:00:00:00:00:0k (readable in captures).</summary>
    public static string NodeMac(int nodeId) => $"02:00:00:00:00:{nodeId:x2}";

    /// <summary>The router's segment MAC.</summary>
    public const string RouterMac = "02:00:00:00:00:fe";

    /// <summary>Node k's switch-side port (the bridge port its link hangs on).</summary>
    public string SwitchPort(int nodeId) => _switchPorts[CheckNode(nodeId) - 1];

    /// <summary>
    /// Which node served a SOCKS reply's BND.ADDR: a node's own address 198.18.0.k (the proxy's
    /// external address for CONNECT), or the VIP with a port inside node k's slice (a UDP relay or
    /// BIND listener). Null when it names no node.
    /// </summary>
    public int? NodeOf(IPEndPoint bound)
    {
        ArgumentNullException.ThrowIfNull(bound);
        for (var k = 1; k <= Nodes.Count; k++)
        {
            if (bound.Address.Equals(NodeAddress(k)) || bound.Address.Equals(NodeAddress6(k)))
            {
                return k;
            }
        }

        return bound.Address.Equals(VipAddress) || bound.Address.Equals(Vip6Address) ? ClusterPortSlice.NodeOfPort(bound.Port, Nodes.Count) : null;
    }

    /// <summary>
    /// Builds the lab and starts the target servers; on any failure the partial lab is torn down
    /// before rethrowing.
    /// </summary>
    public static Task<ClusterLab> CreateAsync(int nodes = 3, int clientAddresses = 60, bool startTargetServers = true, TimeSpan? readyTimeout = null, bool dualStack = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nodes, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(nodes, MaxNodes);
        ArgumentOutOfRangeException.ThrowIfLessThan(clientAddresses, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(clientAddresses, MaxClientAddresses);
        return Task.Run(async () =>
        {
            var network = LabNetwork.Create();
            try
            {
                var lab = Build(network, nodes, clientAddresses, dualStack);
                if (startTargetServers)
                {
                    lab.Servers = await TargetServers.StartAsync(lab.Target, readyTimeout ?? TimeSpan.FromSeconds(20)).ConfigureAwait(false);
                }

                return lab;
            }
            catch
            {
                network.Dispose();
                throw;
            }
        });
    }

    private static ClusterLab Build(LabNetwork network, int nodeCount, int clientCount, bool dualStack)
    {
        var sw = network.AddSwitch("sw");
        var nodes = new List<LabHost>();
        var ports = new string[nodeCount];
        for (var k = 1; k <= nodeCount; k++)
        {
            var node = network.AddHost($"n{k}");
            ports[k - 1] = network.ConnectToSwitch(sw, node, "eth0");
            LabNetwork.Ip(["-n", node.Namespace, "link", "set", "eth0", "address", NodeMac(k)]);
            node.AddAddress("eth0", $"198.18.0.{k}/24");
            node.AddRoute("default via 198.18.0.254");
            nodes.Add(node);
        }

        var router = network.AddHost("router");
        var client = network.AddHost("client");
        var target = network.AddHost("target");
        network.ConnectToSwitch(sw, router, "eth0");
        LabNetwork.Ip(["-n", router.Namespace, "link", "set", "eth0", "address", RouterMac]);
        network.Link(router, "eth1", client, "eth0");
        network.Link(router, "eth2", target, "eth0");
        router.AddAddress("eth0", "198.18.0.254/24");
        router.AddAddress("eth1", "198.18.64.1/24");
        router.AddAddress("eth2", "198.18.128.1/24");
        router.SetSysctl("net.ipv4.ip_forward", "1");

        var addresses = Enumerable.Range(10, clientCount).Select(i => IPAddress.Parse($"198.18.64.{i}")).ToArray();
        AddClientAddresses(client, addresses, "/24");
        client.AddRoute("default via 198.18.64.1");

        target.AddAddress("eth0", "198.18.128.2/24");
        target.AddRoute("default via 198.18.128.1");
        var addresses6 = dualStack ? AddIpv6Plan(nodes, router, client, target, clientCount) : [];
        return new ClusterLab(network, sw, nodes, ports, router, client, target, addresses, addresses6);
    }

    /// <summary>Puts every client address on the client's eth0 in one <c>ip -batch</c> (<paramref name="suffix"/>: prefix and flags).</summary>
    private static void AddClientAddresses(LabHost client, IPAddress[] addresses, string suffix)
    {
        var batch = string.Concat(addresses.Select(a => $"addr add {a}{suffix} dev eth0\n"));
        CommandRunner.RunAsync("ip", ["-n", client.Namespace, "-batch", "-"], CommandRunner.SetupTimeout, batch)
            .GetAwaiter().GetResult().EnsureSuccess();
    }

    /// <summary>The IPv6 half of a dual-stack lab (class remarks); every address nodad, so it works at once.</summary>
    private static IPAddress[] AddIpv6Plan(List<LabHost> nodes, LabHost router, LabHost client, LabHost target, int clientCount)
    {
        for (var k = 1; k <= nodes.Count; k++)
        {
            nodes[k - 1].AddAddress("eth0", $"{NodeAddress6(k)}/64");
            nodes[k - 1].AddRoute("default via fdc6:1200:10::fe");
        }

        router.AddAddress("eth0", "fdc6:1200:10::fe/64");
        router.AddAddress("eth1", "fdc6:1200:64::1/64");
        router.AddAddress("eth2", "fdc6:1200:128::1/64");
        router.SetSysctl("net.ipv6.conf.all.forwarding", "1");
        var addresses = Enumerable.Range(0x10, clientCount).Select(i => IPAddress.Parse($"fdc6:1200:64::{i:x}")).ToArray();
        AddClientAddresses(client, addresses, "/64 nodad");
        client.AddRoute("default via fdc6:1200:64::1");
        target.AddAddress("eth0", $"{Target6Address}/64");
        target.AddRoute("default via fdc6:1200:128::1");
        return addresses;
    }

    /// <summary>A one-screen description of the topology with the namespace names.</summary>
    public string DescribeTopology()
    {
        var lines = new List<string>
        {
            $"switch  {Switch.Namespace}: br0 (mcast_snooping 1, no querier)",
        };
        for (var k = 1; k <= Nodes.Count; k++)
        {
            var (low, high) = ClusterPortSlice.For(k, Nodes.Count);
            lines.Add($"node {k}  {Nodes[k - 1].Namespace}: eth0 {NodeAddress(k)}/24 mac {NodeMac(k)} (switch port {SwitchPort(k)}), slice {low}-{high}");
        }

        lines.Add($"router  {Router.Namespace}: eth0 198.18.0.254/24, eth1 198.18.64.1/24, eth2 198.18.128.1/24, forwarding");
        lines.Add($"client  {Client.Namespace}: eth0 {ClientAddresses[0]}..{ClientAddresses[^1]} ({ClientAddresses.Count} addresses)/24 via 198.18.64.1");
        lines.Add($"target  {Target.Namespace}: eth0 198.18.128.2/24 via 198.18.128.1; HTTP :{TargetServers.HttpPort}, TCP echo :{TargetServers.TcpEchoPort}, UDP echo :{TargetServers.UdpEchoPort}");
        lines.Add($"VIP     {VipAddress} (SOCKS on :{ProxyPort})");
        if (DualStack)
        {
            lines.Add($"IPv6    segment fdc6:1200:10::/64 (node k ::k, router ::fe), clients {ClientAddresses6[0]}..{ClientAddresses6[^1]}, target {Target6Address}, VIP {Vip6Address}");
        }
        return string.Join('\n', lines);
    }

    /// <summary>
    /// Single-IP mode (docs/design.md#single-ip-mode): every proxy started from now on uses the VIP as
    /// its external address, so targets see the VIP for every session of every node.
    /// </summary>
    public bool SingleIp { get; set; }

    /// <summary>
    /// Starts l2proxy on node k: <c>--listen VIP:1080 --external 198.18.0.k --allow 198.18.64.0/24
    /// --port-range {slice}</c> (external: the VIP in <see cref="SingleIp"/> mode) plus
    /// <paramref name="extraArgs"/>. Does not wait for readiness (the VIP may not be on the node yet).
    /// </summary>
    public LabProcess StartProxy(int nodeId, params string[] extraArgs)
    {
        var (low, high) = ClusterPortSlice.For(CheckNode(nodeId), Nodes.Count);
        return StartProxyWithRange(nodeId, $"{low}-{high}", extraArgs);
    }

    /// <summary>As <see cref="StartProxy"/> with another <c>--port-range</c> (a part of the slice, to exhaust it).</summary>
    public LabProcess StartProxyWithRange(int nodeId, string portRange, params string[] extraArgs)
    {
        CheckNode(nodeId);
        var external = SingleIp ? VipAddress : NodeAddress(nodeId);
        var external6 = SingleIp ? Vip6Address : NodeAddress6(nodeId);
        string[] ipv6 = DualStack
            ? ["--listen", $"[{Vip6Address}]:{ProxyPort}", "--external", external6.ToString(), "--allow", ClientSubnet6]
            : [];
        string[] args =
        [
            "--listen", $"{VipAddress}:{ProxyPort}", "--external", external.ToString(),
            "--allow", ClientSubnet, .. ipv6, "--port-range", portRange, .. extraArgs,
        ];
        var process = Nodes[nodeId - 1].Start(LabBinaries.L2Proxy, args);
        _proxies[nodeId - 1] = process;
        return process;
    }

    /// <summary>
    /// Starts l2proxy on node k with a sockd.conf (<c>--config</c>, which takes no other flag) under
    /// <c>env</c> with <paramref name="environment"/> (<c>NAME=VALUE</c>, e.g. KRB5_CONFIG); env execs, so the PID is the proxy's.
    /// </summary>
    public LabProcess StartProxyWithConfig(int nodeId, string configPath, params string[] environment)
    {
        CheckNode(nodeId);
        var process = Nodes[nodeId - 1].Start("/usr/bin/env", [.. environment, LabBinaries.L2Proxy, "--config", configPath]);
        _proxies[nodeId - 1] = process;
        return process;
    }

    /// <summary>
    /// Starts <c>l2bal run --interface eth0 --vip 198.18.0.10/24 --node-id k --node-count N
    /// --key-file FILE</c> plus <paramref name="extraArgs"/> on node k. The lab writes one key
    /// (32 random bytes, hex, one line) shared by all nodes; pass <c>--key-file</c> in
    /// <paramref name="extraArgs"/> to override it (later options win if l2bal allows repeats;
    /// otherwise use <see cref="WriteKeyFile"/> and <see cref="StartBalancerWith"/>).
    /// </summary>
    public LabProcess StartBalancer(int nodeId, params string[] extraArgs)
    {
        KeyFile ??= WriteKeyFile("cluster");
        return StartBalancerWith(nodeId, KeyFile, Nodes.Count, extraArgs);
    }

    /// <summary>Starts l2bal on node k with an explicit key file and node count (for mismatch tests).</summary>
    public LabProcess StartBalancerWith(int nodeId, string keyFile, int nodeCount, params string[] extraArgs)
    {
        CheckNode(nodeId);
        string[] args =
        [
            "run", "--interface", "eth0", .. ServeVip4 || !DualStack ? new[] { "--vip", VipCidr } : [], .. DualStack && ServeVip6 ? new[] { "--vip", Vip6Cidr } : [],
            "--node-id", nodeId.ToString(CultureInfo.InvariantCulture), "--node-count", nodeCount.ToString(CultureInfo.InvariantCulture),
            "--key-file", keyFile, .. extraArgs,
        ];
        var process = Nodes[nodeId - 1].Start(ClusterBinaries.L2Bal, args);
        _balancers[nodeId - 1] = process;
        return process;
    }

    /// <summary>Writes a fresh random key (32 bytes, hex, mode 0600) and returns its path.</summary>
    public string WriteKeyFile(string name)
    {
        var dir = Network.CreateTempDirectory("keys");
        var path = Path.Combine(dir, name + ".key");
        File.WriteAllText(path, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)) + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        return path;
    }

    /// <summary>Runs a program to completion in node k's namespace (e.g. <c>l2bal status --json</c>).</summary>
    public Task<LabRunResult> RunOnNode(int nodeId, string file, IReadOnlyList<string> args, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        Nodes[CheckNode(nodeId) - 1].RunAsync(file, args, timeout ?? TimeSpan.FromSeconds(20), cancellationToken: cancellationToken);

    /// <summary>The MAC the router resolved the VIP to (<c>ip neigh</c>), or "" when it has none.</summary>
    public Task<string> RouterVipMacAsync(CancellationToken cancellationToken = default) => RouterVipMacAsync(VipAddress, cancellationToken);

    /// <summary>The MAC the router resolved <paramref name="vip"/> (either VIP) to (<c>ip neigh</c>), or "" when it has none.</summary>
    public async Task<string> RouterVipMacAsync(IPAddress vip, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(vip);
        var neigh = await Router.RunAsync("ip", ["neigh", "show", "to", vip.ToString(), "dev", "eth0"], TimeSpan.FromSeconds(10), cancellationToken: cancellationToken).ConfigureAwait(false);
        neigh.EnsureSuccess();
        return System.Text.RegularExpressions.Regex.Match(neigh.StdOut, "lladdr ([0-9a-f:]{17})").Groups[1].Value;
    }

    /// <summary>
    /// Puts the VIP statically on node k's eth0 (/32), or removes it. With the VIP on eth0 the
    /// node's kernel answers ARP for it, so the whole VIP goes to that node: for validating the lab
    /// and the traffic generator without l2bal (which keeps the VIP on lo instead).
    /// </summary>
    public void SetStaticVip(int nodeId, bool present) =>
        LabNetwork.Ip(["-n", Nodes[CheckNode(nodeId) - 1].Namespace, "addr", present ? "add" : "del", $"{VipAddress}/32", "dev", "eth0"]);

    /// <summary>Sets node k's switch-side port down: the node loses carrier, the segment loses the node.</summary>
    public void LinkDown(int nodeId) => LabNetwork.Ip(["-n", Switch.Namespace, "link", "set", SwitchPort(nodeId), "down"]);

    /// <summary>Sets node k's switch-side port up again.</summary>
    public void LinkUp(int nodeId) => LabNetwork.Ip(["-n", Switch.Namespace, "link", "set", SwitchPort(nodeId), "up"]);

    /// <summary>
    /// Drops <paramref name="percent"/>% of the frames on node k's switch-side port, independently
    /// in each direction (nft <c>numgen random</c> in netdev ingress and egress of the port, in the
    /// switch namespace); 0 removes the loss. Not tc netem: this kernel is built without
    /// CONFIG_NET_SCH_NETEM ("Specified qdisc kind is unknown"), and has no modules.
    /// </summary>
    public async Task SetLossAsync(int nodeId, int percent, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(percent, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(percent, 100);
        var port = SwitchPort(nodeId);
        var table = $"l2lab_loss_{port}";
        var nft = LabBinaries.Require("nft", "nftables");

        // "add table" first makes "delete table" valid whether or not the loss was set before.
        var script = $"add table netdev {table}\ndelete table netdev {table}\n";
        if (percent > 0)
        {
            // numgen's value must be below its modulus: 100% is a plain drop.
            var match = percent < 100 ? $"numgen random mod 100 < {percent} " : string.Empty;
            script += $$"""
                table netdev {{table}} {
                  chain in { type filter hook ingress device "{{port}}" priority 0; policy accept; {{match}}counter drop comment "lab: loss from node {{nodeId}}"; }
                  chain out { type filter hook egress device "{{port}}" priority 0; policy accept; {{match}}counter drop comment "lab: loss to node {{nodeId}}"; }
                }

                """;
        }

        var result = await Switch.RunAsync(nft, ["-f", "-"], TimeSpan.FromSeconds(20), script, cancellationToken).ConfigureAwait(false);
        result.EnsureSuccess();
    }

    /// <summary>Sends a signal to one lab process by its PID (<see cref="LabSignals"/>).</summary>
    public static void Signal(LabProcess process, int signal)
    {
        ArgumentNullException.ThrowIfNull(process);
        process.Kill(signal);
    }

    /// <summary>Every daemon's captured output, for assertion messages.</summary>
    public string Describe() => Network.DescribeProcesses();

    public ValueTask DisposeAsync() => Network.DisposeAsync();

    public void Dispose() => Network.Dispose();

    private int CheckNode(int nodeId)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nodeId, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(nodeId, Nodes.Count);
        return nodeId;
    }
}
