using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using L2Balance.Proxy.Migration;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>
/// The migration lab with l2proxy on both nodes (issue 19): sessions through A's l2proxy move to B's
/// through the migration control socket, the test playing l2bal's part. As in single-IP mode, both
/// nodes get every segment for the service address: the client and the target send to a multicast MAC
/// the switch floods (the cluster MAC in production), each node takes it as its own; B drops the
/// segments of flows it does not hold and accepts those of restored sockets (their mark), A drops the
/// flows it moved out (a set of 5-tuples filled per batch, as l2bal's <c>moved_out</c>).
/// </summary>
internal sealed partial class MigrationLab
{
    public const int ChannelPortOfProxies = 1081;
    private const int MetricsPort = 9180;
    private const string FloodMac = "03:4c:32:00:00:19";

    public LabProcess? ProxyA { get; private set; }

    public LabProcess? ProxyB { get; private set; }

    /// <summary>Starts l2proxy on A and B (single-IP: the service address is also the external one), gives both the channel key and their accept address, floods the service address to both.</summary>
    public async Task StartProxiesAsync()
    {
        ProxyA = NodeA.Start(LabBinaries.L2Proxy, "--listen", $"{Service}:{ServicePort}", "--external", Service.ToString(), "--allow", "198.18.61.0/24",
            "--port-range", "33000-39999", "--metrics", $"{NodeAAddress}:{MetricsPort}");
        ProxyB = NodeB.Start(LabBinaries.L2Proxy, "--listen", $"{Service}:{ServicePort}", "--external", Service.ToString(), "--allow", "198.18.61.0/24",
            "--port-range", "40000-46999", "--metrics", $"{NodeBAddress}:{MetricsPort}");
        await NodeA.WaitForTcpPortAsync(Service, ServicePort, Step, Describe, ProxyA).WithTimeout(Step);
        await NodeB.WaitForTcpPortAsync(Service, ServicePort, Step, Describe, ProxyB).WithTimeout(Step);
        var key = Convert.ToHexString(_channelKey).ToLowerInvariant();
        foreach (var (node, own) in new[] { (NodeA, NodeAAddress), (NodeB, NodeBAddress) })
        {
            Assert.Equal(["ok"], await ControlAsync(node, $"key 1 {key}"));
            Assert.Equal(["ok"], await ControlAsync(node, $"accept {own}:{ChannelPortOfProxies}"));
            await Nft(node, $$"""
                table netdev l2lab_flood {
                    chain ingress {
                        type filter hook ingress device eth0 priority 0; policy accept;
                        ether daddr {{FloodMac}} meta pkttype set host
                    }
                }
                """);
        }

        await Nft(NodeA, """
            table inet l2lab_moved_out {
                set flows { type ipv4_addr . inet_service . ipv4_addr . inet_service; }
                chain input {
                    type filter hook input priority -300; policy accept;
                    ip saddr . tcp sport . ip daddr . tcp dport @flows drop
                }
            }
            """);
        await Nft(NodeB, $$"""
            table inet l2lab_moved_in {
                chain input {
                    type filter hook input priority -300; policy accept;
                    ip saddr { {{ClientAddress}}, {{TargetAddress}} } socket mark {{MigrationService.RestoredMark}} accept
                    ip saddr { {{ClientAddress}}, {{TargetAddress}} } drop
                }
            }
            """);
        Neighbour(Client, Service, FloodMac);
        Neighbour(Target, Service, FloodMac);
    }

    /// <summary>Opens a session through A's l2proxy (SOCKS5 CONNECT to the target) and starts its streams both ways.</summary>
    public async Task<LabSession> OpenProxiedSessionAsync(int seed, StreamPace pace, CancellationToken stop)
    {
        var client = await _clientSockets.TakeAsync(CancellationToken.None).AsTask().WithTimeout(Step);
        await client.ConnectAsync(new IPEndPoint(Service, ServicePort), CancellationToken.None).AsTask().WithTimeout(Step);
        var greeting = new byte[2];
        await client.SendAsync(new byte[] { 5, 1, 0 }, SocketFlags.None).WithTimeout(Step);
        await ReceiveExactlyAsync(client, greeting).WithTimeout(Step);
        var request = new byte[10];
        request[0] = 5;
        request[1] = 1;
        request[3] = 1;
        TargetAddress.TryWriteBytes(request.AsSpan(4), out _);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(8), TargetPort);
        await client.SendAsync(request, SocketFlags.None).WithTimeout(Step);
        var reply = new byte[10];
        await ReceiveExactlyAsync(client, reply).WithTimeout(Step);
        if (greeting is not [5, 0] || reply[1] != 0)
        {
            // l2proxy logs the failure after its reply.
            await Task.Delay(TimeSpan.FromMilliseconds(300), CancellationToken.None);
        }

        Assert.True(greeting is [5, 0] && reply[1] == 0, $"SOCKS5 through A refused (session {seed}): greeting {Convert.ToHexString(greeting)}, reply {Convert.ToHexString(reply)}\n{Describe()}");
        var target = await _targetListener.AcceptAsync(CancellationToken.None).AsTask().WithTimeout(Step);
        return new LabSession(client, target, null, seed, pace, stop);
    }

    /// <summary>One request on a node's migration control socket (its abstract name, in the node's namespace): the answer's lines.</summary>
    public static async Task<string[]> ControlAsync(LabHost node, string request)
    {
        using var socket = node.OpenSocket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint("\0l2proxy-migrate")).WithTimeout(Step);
        await socket.SendAsync(Encoding.ASCII.GetBytes(request + "\n"), SocketFlags.None).WithTimeout(Step);
        var answer = new MemoryStream();
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None).WithTimeout(TimeSpan.FromSeconds(40))) > 0)
        {
            answer.Write(buffer, 0, n);
        }

        return Encoding.ASCII.GetString(answer.ToArray()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>Drops the segments of both legs of <paramref name="sessions"/> (lines of <c>list</c>) on A, as l2bal's <c>moved_out</c> before a move.</summary>
    public Task DropMovedOutAsync(IEnumerable<ListedSession> sessions) => MovedOutAsync("add", sessions);

    /// <summary>Takes sessions that stayed out of A's drop again.</summary>
    public Task KeepOnAAsync(IEnumerable<ListedSession> sessions) => MovedOutAsync("delete", sessions);

    private Task MovedOutAsync(string verb, IEnumerable<ListedSession> sessions)
    {
        var elements = sessions.SelectMany(s => new[]
        {
            $"{s.Client.Address} . {s.Client.Port} . {s.Local.Address} . {s.Local.Port}",
            $"{s.TargetRemote.Address} . {s.TargetRemote.Port} . {s.TargetLocal.Address} . {s.TargetLocal.Port}",
        }).ToList();
        return elements.Count == 0 ? Task.CompletedTask : Nft(NodeA, $"{verb} element inet l2lab_moved_out flows {{ {string.Join(", ", elements)} }}\n");
    }

    /// <summary>A metric of a node's l2proxy (the sum of its samples whose line starts with <paramref name="sample"/>), read from B's namespace.</summary>
    public Task<long> MetricAsync(IPAddress node, string sample) => MetricAsync(_bSockets, new IPEndPoint(node, MetricsPort), sample);

    /// <summary>A metric of the l2proxy at <paramref name="at"/>, in-process over a socket of <paramref name="sockets"/> (no process started: fast enough to poll).</summary>
    public static async Task<long> MetricAsync(NamespaceSocketSupply sockets, IPEndPoint at, string sample)
    {
        using var socket = await sockets.TakeAsync(CancellationToken.None).AsTask().WithTimeout(Step);
        await socket.ConnectAsync(at).WithTimeout(Step);
        await socket.SendAsync(Encoding.ASCII.GetBytes("GET /metrics HTTP/1.0\r\n\r\n"), SocketFlags.None).WithTimeout(Step);
        var text = new StringBuilder();
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None).WithTimeout(Step)) > 0)
        {
            text.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }

        return text.ToString().Split('\n').Where(l => l.StartsWith(sample, StringComparison.Ordinal))
            .Sum(l => long.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
    }

    private static async Task ReceiveExactlyAsync(Socket socket, byte[] buffer)
    {
        int read = 0;
        while (read < buffer.Length)
        {
            int n = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None);
            read += n > 0 ? n : throw new LabCommandException($"closed after {read} of {buffer.Length} bytes");
        }
    }
}

/// <summary>A line of <c>list</c>: <c>session ID KIND CLIENT LOCAL TARGET-LOCAL TARGET HELD STATE</c>.</summary>
internal sealed record ListedSession(long Id, string Kind, IPEndPoint Client, IPEndPoint Local, IPEndPoint TargetLocal, IPEndPoint TargetRemote, long Held, string State)
{
    public static ListedSession Parse(string line)
    {
        var w = line.Split(' ');
        Assert.True(w.Length == 9 && w[0] == "session", $"not a session line: {line}");
        return new ListedSession(long.Parse(w[1], CultureInfo.InvariantCulture), w[2], IPEndPoint.Parse(w[3]), IPEndPoint.Parse(w[4]), IPEndPoint.Parse(w[5]),
            IPEndPoint.Parse(w[6]), long.Parse(w[7], CultureInfo.InvariantCulture), w[8]);
    }
}
