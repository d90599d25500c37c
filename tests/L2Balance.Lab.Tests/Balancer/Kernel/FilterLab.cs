using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Kernel;
using L2Balance.Balancer.Protocol;
using L2Balance.Tests.Common;

namespace L2Balance.Lab.Tests.Balancer.Kernel;

/// <summary>
/// A node and a client linked directly: node eth0 198.18.0.1/24 with the VIP 198.18.0.10/32 on lo
/// (arp_ignore=1, arp_announce=2), an echo server on VIP:8080 in the node; the client has
/// 198.18.0.100 and 60 more addresses (.101-.160) and a permanent neighbour entry VIP → cluster MAC,
/// so no ARP responder is needed.
/// </summary>
internal sealed class FilterLab : IDisposable
{
    public const int Port = 8080;
    public const int ExtraSources = 60;

    /// <summary>
    /// How long a connect may take before it counts as "dropped". A dropped SYN stays dropped when
    /// retransmitted (at 1 s), so the window only has to be generous: the machine may be busy.
    /// </summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromMilliseconds(1500);

    public static readonly IPAddress Vip = IPAddress.Parse("198.18.0.10");

    private readonly LabNetwork _lab;
    private readonly Socket _listener;
    private readonly ConcurrentBag<Socket> _accepted = [];
    private readonly CancellationTokenSource _stop = new();

    private FilterLab(LabNetwork lab, LabHost node, LabHost client, MacAddress clusterMac, Socket listener)
    {
        _lab = lab;
        Node = node;
        Client = client;
        ClusterMac = clusterMac;
        _listener = listener;
        _ = AcceptLoopAsync();
    }

    public LabHost Node { get; }

    public LabHost Client { get; }

    public MacAddress ClusterMac { get; }

    public static IReadOnlyList<IPAddress> Sources { get; } =
        Enumerable.Range(101, ExtraSources).Select(i => IPAddress.Parse($"198.18.0.{i}")).ToArray();

    public static async Task<FilterLab> CreateAsync(MacMode mode)
    {
        var clusterMac = MacAddress.Parse(mode == MacMode.Multicast ? "01:00:5e:00:00:0a" : "02:c1:00:00:00:0a");
        var lab = LabNetwork.Create();
        try
        {
            var node = lab.AddHost("n");
            var client = lab.AddHost("c");
            lab.Link(node, "eth0", client, "eth0");
            node.AddAddress("eth0", "198.18.0.1/24");
            node.AddAddress("lo", "198.18.0.10/32");
            foreach (var key in new[] { "all", "eth0" })
            {
                node.SetSysctl($"net.ipv4.conf.{key}.arp_ignore", "1");
                node.SetSysctl($"net.ipv4.conf.{key}.arp_announce", "2");
            }

            var batch = Path.Combine(lab.CreateTempDirectory("kernel"), "client.ip");
            await File.WriteAllLinesAsync(batch,
                Sources.Select(s => $"addr add {s}/24 dev eth0")
                    .Prepend("addr add 198.18.0.100/24 dev eth0")
                    .Append($"neigh replace {Vip} lladdr {clusterMac} dev eth0 nud permanent"));
            (await client.RunAsync("ip", ["-batch", batch], TimeSpan.FromSeconds(20)).WithTimeout()).EnsureSuccess();

            var listener = node.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(Vip, Port));
            listener.Listen(1024);
            return new FilterLab(lab, node, client, clusterMac, listener);
        }
        catch
        {
            lab.Dispose();
            throw;
        }
    }

    public FilterSettings Settings(MacMode mode, int buckets, uint seed) => new(
        Interface: "eth0",
        Vip: Vip,
        ClusterMac: ClusterMac,
        Mode: mode,
        Buckets: buckets,
        Seed: seed,
        OwnSlice: new PortSpan(32768, 42178),
        AllSlices: new PortSpan(32768, 60999));

    /// <summary>Connects from <paramref name="source"/> to VIP:8080; null if the SYN got no answer in time. A RST throws.</summary>
    public async Task<Socket?> TryConnectAsync(IPAddress source) => await ConnectAsync(Bound(source));

    /// <summary>
    /// The sources whose connect succeeded (sockets closed again). All sockets are made and bound
    /// first, so each connect's short window covers only the handshake.
    /// </summary>
    public async Task<HashSet<IPAddress>> ConnectingSourcesAsync(IEnumerable<IPAddress> sources)
    {
        var bound = sources.Select(s => (Source: s, Socket: Bound(s))).ToList();
        var results = await Task.WhenAll(bound.Select(async b => (b.Source, Socket: await ConnectAsync(b.Socket)))).WithTimeout();
        var connected = new HashSet<IPAddress>();
        foreach (var (source, socket) in results)
        {
            if (socket is not null)
            {
                connected.Add(source);
                socket.Dispose();
            }
        }

        return connected;
    }

    /// <summary>
    /// Connects every flow (source address, source port) to VIP:8080 at once; the sockets that
    /// connected stay open (the caller disposes them), the others are null.
    /// </summary>
    public async Task<Dictionary<(IPAddress Source, int Port), Socket?>> ConnectFlowsAsync(IEnumerable<(IPAddress Source, int Port)> flows)
    {
        var bound = flows.Select(f => (Flow: f, Socket: Bound(f.Source, f.Port))).ToList();
        var results = await Task.WhenAll(bound.Select(async b => (b.Flow, Socket: await ConnectAsync(b.Socket)))).WithTimeout();
        return results.ToDictionary(r => r.Flow, r => r.Socket);
    }

    /// <summary>
    /// Gives the client one address in each of <paramref name="count"/> other /24s (198.18.1.7,
    /// 198.18.2.7, …, as /32 on its eth0) and the node a route to them all on eth0: sources for
    /// the network affinity, which hashes the /24.
    /// </summary>
    public async Task<IReadOnlyList<IPAddress>> AddNetworkSourcesAsync(int count)
    {
        var sources = Enumerable.Range(1, count).Select(k => IPAddress.Parse($"198.18.{k}.7")).ToArray();
        var batch = Path.Combine(_lab.CreateTempDirectory("networks"), "client.ip");
        await File.WriteAllLinesAsync(batch, sources.Select(s => $"addr add {s}/32 dev eth0"));
        (await Client.RunAsync("ip", ["-batch", batch], TimeSpan.FromSeconds(20)).WithTimeout()).EnsureSuccess();
        Node.AddRoute("198.18.0.0/16 dev eth0");
        return sources;
    }

    /// <summary>
    /// Sends one datagram of <paramref name="size"/> bytes (fragmented above the MTU) from each flow
    /// to VIP:<paramref name="port"/> and returns the flows whose whole datagram the node received
    /// within a second after the last send.
    /// </summary>
    public async Task<List<(IPAddress Source, int Port)>> SendFragmentedAsync(IReadOnlyList<(IPAddress Source, int Port)> flows, int port, int size)
    {
        using var receiver = Node.OpenSocket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        receiver.Bind(new IPEndPoint(Vip, port));
        var payload = new byte[size];
        foreach (var f in flows)
        {
            using var sender = Client.OpenSocket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            sender.Bind(new IPEndPoint(f.Source, f.Port));
            await sender.SendToAsync(payload, new IPEndPoint(Vip, port));
        }

        var arrived = new List<(IPAddress, int)>();
        var buffer = new byte[size + 1];
        while (arrived.Count < flows.Count)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            try
            {
                var r = await receiver.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), cts.Token);
                if (r.ReceivedBytes == size && r.RemoteEndPoint is IPEndPoint from)
                {
                    arrived.Add((from.Address, from.Port));
                }
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        return arrived;
    }

    /// <summary>The node's count of IPv4 datagrams reassembled from fragments (ReasmOKs of /proc/net/snmp).</summary>
    public async Task<long> ReassembledAsync()
    {
        var lines = (await Node.RunAsync("cat", ["/proc/net/snmp"], TimeSpan.FromSeconds(10)).WithTimeout()).EnsureSuccess().StdOut
            .Split('\n').Where(l => l.StartsWith("Ip: ", StringComparison.Ordinal)).Select(l => l.Split(' ')).ToList();
        int at = Array.IndexOf(lines[0], "ReasmOKs");
        return long.Parse(lines[1][at], System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>The node's conntrack table: per flow to the VIP, (source, source port) → its mark.</summary>
    public async Task<Dictionary<(IPAddress Source, int Port), uint>> ConntrackMarksAsync()
    {
        var text = (await Node.RunAsync("cat", ["/proc/net/nf_conntrack"], TimeSpan.FromSeconds(10)).WithTimeout()).EnsureSuccess().StdOut;
        var marks = new Dictionary<(IPAddress, int), uint>();
        foreach (var line in text.Split('\n'))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // The first src=, dst= and sport= are the original direction's.
            string? Field(string name) => fields.FirstOrDefault(f => f.StartsWith(name + "=", StringComparison.Ordinal))?[(name.Length + 1)..];
            if (Field("dst") == Vip.ToString() && Field("src") is { } src && Field("sport") is { } sport && Field("mark") is { } mark)
            {
                marks[(IPAddress.Parse(src), int.Parse(sport, System.Globalization.CultureInfo.InvariantCulture))] =
                    uint.Parse(mark, System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return marks;
    }

    private Socket Bound(IPAddress source, int port = 0)
    {
        var socket = Client.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, port != 0);
        socket.Bind(new IPEndPoint(source, port));
        return socket;
    }

    private static async Task<Socket?> ConnectAsync(Socket socket)
    {
        try
        {
            using var cts = new CancellationTokenSource(ConnectTimeout);
            await socket.ConnectAsync(new IPEndPoint(Vip, Port), cts.Token);
            return socket;
        }
        catch (OperationCanceledException)
        {
            socket.Dispose();
            return null;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Sends one line and expects the echo: true if it came back within <paramref name="timeout"/>.</summary>
    public static async Task<bool> EchoAsync(Socket socket, string text, TimeSpan timeout)
    {
        var bytes = System.Text.Encoding.ASCII.GetBytes(text);
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await socket.SendAsync(bytes, SocketFlags.None, cts.Token);
            var buffer = new byte[bytes.Length];
            int read = 0;
            while (read < buffer.Length)
            {
                int n = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, cts.Token);
                if (n == 0)
                {
                    return false;
                }

                read += n;
            }

            return buffer.AsSpan().SequenceEqual(bytes);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Connects from <paramref name="source"/>:<paramref name="port"/> (a port used before) to VIP:8080; null if the SYN got no answer in time.</summary>
    public async Task<Socket?> TryConnectFromAsync(IPAddress source, int port) => await ConnectAsync(Bound(source, port));

    /// <summary>The node's socket accepted from <paramref name="client"/> (the echo loop's), waited for briefly.</summary>
    public async Task<Socket> AcceptedFromAsync(EndPoint client)
    {
        for (int i = 0; i < 50; i++)
        {
            if (_accepted.FirstOrDefault(s => Equals(s.RemoteEndPoint, client)) is { } found)
            {
                return found;
            }
            await Task.Delay(20);
        }
        throw new InvalidOperationException($"no accepted socket from {client}");
    }

    /// <summary>Closes <paramref name="socket"/> in TCP_REPAIR mode: it vanishes without a FIN or RST, as a moved session's old socket does.</summary>
    public static void Vanish(Socket socket)
    {
        socket.SetRawSocketOption(6 /* SOL_TCP */, 19 /* TCP_REPAIR */, BitConverter.GetBytes(1));
        socket.Dispose();
    }

    /// <summary>A forged bare SYN from <paramref name="source"/>:<paramref name="port"/> to VIP:8080 (<see cref="ForgedSyn"/>).</summary>
    public void SendBareSyn(IPAddress source, int port) => ForgedSyn.Send(Client, new IPEndPoint(source, port), new IPEndPoint(Vip, Port));

    /// <summary>The node's conntrack line of the flow from <paramref name="source"/>:<paramref name="port"/> to the VIP (for messages), or "none".</summary>
    public async Task<string> ConntrackLineAsync(IPAddress source, int port)
    {
        var text = (await Node.RunAsync("cat", ["/proc/net/nf_conntrack"], TimeSpan.FromSeconds(10)).WithTimeout()).EnsureSuccess().StdOut;
        return text.Split('\n').FirstOrDefault(l => l.Contains($"src={source} dst={Vip} sport={port} ", StringComparison.Ordinal))?.Trim() ?? "none";
    }

    /// <summary>A set of every one of <paramref name="buckets"/> buckets.</summary>
    public static BucketSet AllBuckets(int buckets)
    {
        var all = new BucketSet(buckets);
        for (int b = 0; b < buckets; b++)
        {
            all.Add(b);
        }

        return all;
    }

    /// <summary><c>nft list tables</c> in the node, from a separate process.</summary>
    public async Task<string> ListTablesAsync() =>
        (await Node.RunAsync("nft", ["list", "tables"], TimeSpan.FromSeconds(10)).WithTimeout()).EnsureSuccess().StdOut;

    public LabNetwork Network => _lab;

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        foreach (var s in _accepted)
        {
            s.Dispose();
        }

        _lab.Dispose();
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var s = await _listener.AcceptAsync(_stop.Token);
                _accepted.Add(s);
                _ = EchoLoopAsync(s);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task EchoLoopAsync(Socket s)
    {
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                int n = await s.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (n == 0)
                {
                    return;
                }

                await s.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, _stop.Token);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }
}
