using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Cluster;
using L2Balance.Balancer.Kernel;
using L2Balance.Balancer.Net;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Balancer.Kernel;

/// <summary>
/// The moved-flow exceptions of the filter (docs/design.md#migration-filter) with plain sockets, read
/// from the filter's counters: a flow moving away is dropped silently and comes back whole when its
/// session stays; a confirmed one leaves conntrack and stays dropped after the tables are made anew (an l2bal restart);
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
    public async Task MovedAway_ConfirmedFlow_LeavesConntrackAndStaysDroppedWhenTheTablesAreMadeAnew()
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
            var deletes = filter.ForgetMoved([flow]);
            var dropped = filter.ReadCounters().DroppedMovedOut;
            Assert.False(await FilterLab.EchoAsync(client, "moved\n", TimeSpan.FromSeconds(1)));
            Assert.Equal(new ConntrackDeletes(1, 0, 0), deletes);
            Assert.True(filter.ReadCounters().DroppedMovedOut > dropped, filter.ReadCounters().ToString());
            // Its packets meet the moved_away rule as a new flow, dropped: no entry is confirmed.
            Assert.Equal("none", await lab.ConntrackLineAsync(flow.Source.Address, flow.Source.Port));
        }

        // The owner tables went with their context, as with a stopped l2bal; a new one knows no set element,
        // and a mid-flow packet of a flow conntrack does not know is dropped silently (a RST would throw: ECONNRESET).
        using var again = Installed(lab, all);
        Assert.False(await FilterLab.EchoAsync(client, "still moved\n", TimeSpan.FromSeconds(1.5)));
        var counters = again.ReadCounters();
        Assert.True(counters.DroppedMidFlow + counters.DroppedSliceMidFlow > 0, counters.ToString());
        Assert.Equal("none", await lab.ConntrackLineAsync(flow.Source.Address, flow.Source.Port));
        client.Dispose();
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task BareSyn_TupleMovedAwayInAnOwnedBucket_IsANewConnectionServedHereWhoseLaterPacketsPass()
    {
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        using var filter = Installed(lab, FilterLab.AllBuckets(Buckets));
        var (source, port) = await MovedAwayAndVanishedAsync(lab, filter, FilterLab.Sources[2]);
        var moved = await lab.ConntrackLineAsync(source, port);
        var before = filter.ReadCounters();

        // The client reuses its source port for a new connection: the moved flow's entry left conntrack at the move, its moved_away element is still there.
        using var again = await lab.TryConnectFromAsync(source, port);
        var served = again is not null && await FilterLab.EchoAsync(again, "new\n", TimeSpan.FromSeconds(5)) && await FilterLab.EchoAsync(again, "more\n", TimeSpan.FromSeconds(5));
        var after = filter.ReadCounters();
        var mark = (await lab.ConntrackMarksAsync())[(source, port)];

        Assert.Equal("none", moved);
        Assert.True(served, $"the new connection from {source}:{port} is served; conntrack before: {moved}; now: {await lab.ConntrackLineAsync(source, port)}");
        Assert.True(after.AcceptedNew > before.AcceptedNew, $"accepted_new {before.AcceptedNew} -> {after.AcceptedNew}");
        Assert.Equal(NftRuleset.FlowMarkBase, mark & 0xffff0000u);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task BareSyn_LiveTupleMovedAwayInABucketNotOwned_IsDroppedAndTheMovedFlowStaysDroppedWithoutReset()
    {
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        var all = FilterLab.AllBuckets(Buckets);
        using var filter = Installed(lab, all);
        using var client = await MovedAwayAsync(lab, filter, FilterLab.Sources[3]);
        var flow = Inbound(client);
        // Draining every bucket: frames pass ingress (as on a drained node), new flows are not this node's.
        filter.Apply(new BucketSet(Buckets), all, ownSlice: true, Lease);
        var before = filter.ReadCounters();

        lab.SendBareSyn(flow.Source.Address, flow.Source.Port);
        await Task.Delay(300);
        var afterSyn = filter.ReadCounters();
        // A RST would throw here (ECONNRESET): the moved flow's packets keep vanishing.
        var echoed = await FilterLab.EchoAsync(client, "after\n", TimeSpan.FromSeconds(1.5));
        var after = filter.ReadCounters();

        Assert.True(afterSyn.DroppedNotOwned > before.DroppedNotOwned, $"the SYN meets the owner rules: dropped_not_owned {before.DroppedNotOwned} -> {afterSyn.DroppedNotOwned}");
        Assert.Equal(before.AcceptedNew, afterSyn.AcceptedNew);
        Assert.False(echoed);
        Assert.True(after.DroppedMovedOut > afterSyn.DroppedMovedOut, $"dropped_moved_out {afterSyn.DroppedMovedOut} -> {after.DroppedMovedOut}");
        Assert.Equal("none", await lab.ConntrackLineAsync(flow.Source.Address, flow.Source.Port));
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task BareSyn_TupleRestoredHereInABucketNotOwned_LiveSocketKeepsItsFlowAndAGoneOneIsNotAnswered()
    {
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        using var filter = Installed(lab, FilterLab.AllBuckets(Buckets));
        var client = await lab.TryConnectAsync(FilterLab.Sources[4]) ?? throw new InvalidOperationException("no connection");
        var local = (IPEndPoint)client.LocalEndPoint!;
        var (source, port) = (local.Address, local.Port);
        var restored = await lab.AcceptedFromAsync(client.LocalEndPoint!);
        // As a restored socket: marked, so its frames mark the flow 0x40000 and open ingress for it.
        restored.SetRawSocketOption(SOL_SOCKET, SO_MARK, BitConverter.GetBytes(NftRuleset.MigrationMark));
        Assert.True(await FilterLab.EchoAsync(client, "restored\n", TimeSpan.FromSeconds(5)));
        filter.Apply(new BucketSet(Buckets), new BucketSet(Buckets), ownSlice: true, Lease);

        // A forged SYN on the live tuple: the restored socket may answer a challenge ACK, never a RST or a new connection.
        lab.SendBareSyn(source, port);
        await Task.Delay(300);
        var stillFlowing = await FilterLab.EchoAsync(client, "still\n", TimeSpan.FromSeconds(5));
        var mark = (await lab.ConntrackMarksAsync())[(source, port)];
        FilterLab.Vanish(restored);
        FilterLab.Vanish(client);
        var before = filter.ReadCounters();
        using var again = await lab.TryConnectFromAsync(source, port);
        var after = filter.ReadCounters();

        Assert.True(stillFlowing);
        Assert.Equal(NftRuleset.MovedInFlowMark, mark);
        Assert.True(again is null, $"a node that does not own the bucket never answers a SYN on a tuple restored here before; conntrack: {await lab.ConntrackLineAsync(source, port)}");
        Assert.True(after.DroppedNotOwned > before.DroppedNotOwned, $"dropped_not_owned {before.DroppedNotOwned} -> {after.DroppedNotOwned}");
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task SynAck_ConnectionThisNodeOpensOnATupleThatMovedAway_PassesOnceThePeerAcceptsItNeverWhileTheOldOneLives()
    {
        using var lab = await FilterLab.CreateAsync(MacMode.Multicast);
        using var filter = Installed(lab, FilterLab.AllBuckets(Buckets));
        using var target = lab.Client.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        target.Bind(new IPEndPoint(IPAddress.Parse("198.18.0.100"), 9000));
        target.Listen(8);
        // A target leg from the own slice, as l2proxy opens them; it moves away, its socket here vanishes, the target's lives on.
        var leg = await ConnectAsync(Bound(lab, 40010, mark: false), target.LocalEndPoint!) ?? throw new InvalidOperationException("no connection");
        using var old = await target.AcceptAsync();
        var flow = new FlowTuple(ProtocolType.Tcp, (IPEndPoint)target.LocalEndPoint!, new IPEndPoint(FilterLab.Vip, 40010));
        filter.MovedOut([flow], MovedFlowChange.Moving);
        filter.MovedOut([flow], MovedFlowChange.Moved);
        filter.ForgetMoved([flow]);
        FilterLab.Vanish(leg);

        // The stack picks the same port for the same target while the old session lives there: the target answers an ACK, dropped here.
        using var whileLive = await ConnectAsync(Bound(lab, 40010, mark: false), target.LocalEndPoint!);
        var oldCut = old.Poll(0, SelectMode.SelectRead);
        FilterLab.Vanish(old);
        // Once the old session is gone the target accepts the new one: its SYN-ACK passes, and the rest of the connection.
        using var afterwards = await ConnectAsync(Bound(lab, 40010, mark: false), target.LocalEndPoint!);
        using var accepted = afterwards is null ? null : await target.AcceptAsync();
        bool flowing = false;
        if (accepted is not null)
        {
            afterwards!.Send("x"u8);
            accepted.ReceiveTimeout = 2000;
            flowing = accepted.Receive(new byte[1]) == 1;
        }
        var entry = await lab.ConntrackLineAsync(IPAddress.Parse("198.18.0.100"), 9000);

        Assert.Null(whileLive);
        Assert.False(oldCut, "the target's live session got no RST and no FIN");
        Assert.NotNull(afterwards);
        Assert.True(flowing, entry);
        Assert.DoesNotContain("mark=131072", entry, StringComparison.Ordinal);
    }

    /// <summary>A connection from <paramref name="source"/> confirmed moved away (sets, and its conntrack entry deleted, as l2bal does), its node socket vanished silently; the client's socket.</summary>
    private static async Task<Socket> MovedAwayAsync(FilterLab lab, NftablesFilter filter, IPAddress source)
    {
        var client = await lab.TryConnectAsync(source) ?? throw new InvalidOperationException("no connection");
        Assert.True(await FilterLab.EchoAsync(client, "before\n", TimeSpan.FromSeconds(5)));
        var flow = Inbound(client);
        filter.MovedOut([flow], MovedFlowChange.Moving);
        filter.MovedOut([flow], MovedFlowChange.Moved);
        filter.ForgetMoved([flow]);
        FilterLab.Vanish(await lab.AcceptedFromAsync(client.LocalEndPoint!));
        return client;
    }

    /// <summary>As <see cref="MovedAwayAsync"/>, the client's socket vanished too: the moved session ended; its tuple.</summary>
    private static async Task<(IPAddress Source, int Port)> MovedAwayAndVanishedAsync(FilterLab lab, NftablesFilter filter, IPAddress source)
    {
        var client = await MovedAwayAsync(lab, filter, source);
        var flow = Inbound(client);
        FilterLab.Vanish(client);
        return (flow.Source.Address, flow.Source.Port);
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
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
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
