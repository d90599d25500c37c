using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Kernel;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Balancer.Kernel;

/// <summary>
/// The moved-flow exceptions of the filter (docs/design.md#migration-filter) with plain sockets, read
/// from the filter's counters: a flow moving away is dropped silently and comes back whole when its
/// session stays; a confirmed one stays dropped after the tables are made anew (an l2bal restart);
/// a socket carrying the migration mark is accepted on another node's slice, and its frames open
/// ingress for its flow.
/// </summary>
public sealed class MigrationFilterLabTests
{
    private const int Buckets = 1024;
    private const uint Seed = 0x5eed;
    private const int SOL_SOCKET = 1;
    private const int SO_MARK = 36;
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    /// <summary>The filter with the migration rules in the lab's node, owning and accepting <paramref name="buckets"/>, its slice granted.</summary>
    private static NftablesFilter Installed(FilterLab lab, BucketSet buckets)
    {
        var filter = new NftablesFilter(lab.Node.NamespacePath);
        filter.Install(lab.Settings(MacMode.Multicast, Buckets, Seed) with { Migrate = true });
        filter.Apply(buckets, buckets, ownSlice: true, Lease);
        return filter;
    }

    private static FlowTuple Inbound(Socket client) =>
        new(ProtocolType.Tcp, (IPEndPoint)client.LocalEndPoint!, new IPEndPoint(FilterLab.Vip, FilterLab.Port));

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task MovedOut_EstablishedFlow_IsDroppedWithoutResetAndComesBackWholeWhenItStays()
    {
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        using var filter = Installed(lab, FilterLab.AllBuckets(Buckets));
        using var client = await lab.TryConnectAsync(FilterLab.Sources[0]) ?? throw new InvalidOperationException("no connection");
        Assert.True(await FilterLab.EchoAsync(client, "before\n", TimeSpan.FromSeconds(5)));

        filter.MovedOut([Inbound(client)], MovedFlowChange.Moving);
        // A RST would throw here (ECONNRESET): the packets only vanish.
        var whileMoving = await FilterLab.EchoAsync(client, "moving\n", TimeSpan.FromSeconds(1.5));
        var dropped = filter.ReadCounters().DroppedMovedOut;
        filter.MovedOut([Inbound(client)], MovedFlowChange.Stayed);
        var after = await SendAndReadAsync(client, "stayed\n", "moving\nstayed\n", TimeSpan.FromSeconds(10));

        Assert.False(whileMoving);
        Assert.True(dropped > 0, $"dropped_moved_out {dropped}");
        Assert.True(after, "the session that stayed goes on: the bytes sent while it was dropped arrive (retransmitted), once and in order");
        Assert.False((await lab.ConntrackMarksAsync()).ContainsValue(NftRuleset.MovedFlowMark));
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task MovedAway_ConfirmedFlow_IsMarkedInConntrackAndStaysDroppedWhenTheTablesAreMadeAnew()
    {
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        var all = FilterLab.AllBuckets(Buckets);
        Socket client;
        FlowTuple flow;
        using (var filter = Installed(lab, all))
        {
            client = await lab.TryConnectAsync(FilterLab.Sources[1]) ?? throw new InvalidOperationException("no connection");
            Assert.True(await FilterLab.EchoAsync(client, "before\n", TimeSpan.FromSeconds(5)));
            flow = Inbound(client);
            filter.MovedOut([flow], MovedFlowChange.Moving);
            filter.MovedOut([flow], MovedFlowChange.Moved);
            Assert.False(await FilterLab.EchoAsync(client, "moved\n", TimeSpan.FromSeconds(1)));
            Assert.Equal(NftRuleset.MovedFlowMark, (await lab.ConntrackMarksAsync())[(flow.Source.Address, flow.Source.Port)]);
        }

        // The owner tables went with their context, as with a stopped l2bal; a new one knows no set element.
        using var again = Installed(lab, all);
        Assert.False(await FilterLab.EchoAsync(client, "still moved\n", TimeSpan.FromSeconds(1.5)));
        Assert.True(again.ReadCounters().DroppedMovedOut > 0, again.ReadCounters().ToString());
        client.Dispose();
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task SocketMark_ListenerOnAnotherNodesSlice_IsAcceptedAheadOfTheSliceDropAndAnUnmarkedOneIsNot()
    {
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        using var filter = Installed(lab, FilterLab.AllBuckets(Buckets));
        using var marked = Listen(lab, 50000, mark: true);
        using var plain = Listen(lab, 50001, mark: false);

        using var toMarked = await ConnectAsync(lab.Client, new IPEndPoint(FilterLab.Vip, 50000));
        using var toPlain = await ConnectAsync(lab.Client, new IPEndPoint(FilterLab.Vip, 50001));
        var counters = filter.ReadCounters();

        Assert.NotNull(toMarked);
        Assert.Null(toPlain);
        Assert.True(counters.AcceptedMovedIn > 0, counters.ToString());
        Assert.True(counters.DroppedOtherSlice > 0, counters.ToString());
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task EgressLearning_MarkedSocketsFlow_PassesIngressOnAnotherNodesSliceInABucketNotAccepted()
    {
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        using var filter = Installed(lab, new BucketSet(Buckets));
        using var server = lab.Client.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        server.Bind(new IPEndPoint(IPAddress.Parse("198.18.0.100"), 9000));
        server.Listen(8);

        using var marked = await ConnectAsync(Bound(lab, 50002, mark: true), server.LocalEndPoint!);
        using var plain = await ConnectAsync(Bound(lab, 50003, mark: false), server.LocalEndPoint!);
        var counters = filter.ReadCounters();

        Assert.NotNull(marked);
        Assert.Null(plain);
        Assert.True(counters.DroppedOtherSlice > 0, counters.ToString());
    }

    /// <summary>Sends <paramref name="text"/> and reads until <paramref name="expected"/>'s length: whether exactly it came back in time.</summary>
    private static async Task<bool> SendAndReadAsync(Socket socket, string text, string expected, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes(text), SocketFlags.None, cts.Token);
        var buffer = new byte[expected.Length];
        int read = 0;
        try
        {
            while (read < buffer.Length)
            {
                int n = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, cts.Token);
                if (n == 0)
                {
                    return false;
                }
                read += n;
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        return System.Text.Encoding.ASCII.GetString(buffer) == expected;
    }

    private static Socket Bound(FilterLab lab, int port, bool mark)
    {
        var socket = lab.Node.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        if (mark)
        {
            socket.SetRawSocketOption(SOL_SOCKET, SO_MARK, BitConverter.GetBytes(NftRuleset.MigrationMark));
        }
        socket.Bind(new IPEndPoint(FilterLab.Vip, port));
        return socket;
    }

    private static Socket Listen(FilterLab lab, int port, bool mark)
    {
        var socket = Bound(lab, port, mark);
        socket.Listen(8);
        return socket;
    }

    private static async Task<Socket?> ConnectAsync(LabHost host, EndPoint to) =>
        await ConnectAsync(host.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp), to);

    /// <summary>Connects, or null when the handshake got no answer within the lab's connect window (a RST throws).</summary>
    private static async Task<Socket?> ConnectAsync(Socket socket, EndPoint to)
    {
        try
        {
            using var cts = new CancellationTokenSource(FilterLab.ConnectTimeout);
            await socket.ConnectAsync(to, cts.Token);
            return socket;
        }
        catch (OperationCanceledException)
        {
            socket.Dispose();
            return null;
        }
    }
}
