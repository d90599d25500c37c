using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using L2Balance.Lab.Cluster;
using L2Balance.Lab.Tests.Balancer.Control;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Lab.Tests.Balancer.Cluster;

/// <summary>UDP associations through <c>drain --migrate</c> (docs/design.md#udp-associations).</summary>
public partial class MigrationClusterTests
{
    /// <summary>UDP associations of the drained node's clients.</summary>
    private const int Associations = 20;

    /// <summary>One numbered datagram each way per association every this long.</summary>
    private static readonly TimeSpan DatagramPace = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Datagrams an association may lose (both ways together): 1.5 s of its traffic. A move's pause is well under it, but with 300
    /// TCP sessions beside it a batch's pause on a loaded lab machine reached 375 ms
    /// (docs/benchmarks.md#issue-19-drain---migrate-with---workers-2-on-every-l2proxy-2026-12-03); an association
    /// cut or left behind loses all after its move, which the checks of echoes after the move and of none twice catch.
    /// </summary>
    private const int LossBound = 75;

    /// <summary>At most this many datagrams per association: the loops are bounded in count as in time.</summary>
    private const int MaxDatagrams = 1000;

    private const int DatagramBytes = 64;

    /// <summary>Associations whose move is refused.</summary>
    private const int Refusals = 3;

    [SkippableFact(typeof(LabUnavailableException))]
    public Task DrainMigrate_UdpAssociationsOfTheDrainedNode_ContinueOnTheirBucketsNewOwners() => DrainMigrateUdpAsync(ipv6: false);

    /// <summary>The same over the IPv6 VIP: IPv6 clients, relays on the IPv6 VIP, an IPv6 target (docs/design.md#udp-associations).</summary>
    [SkippableFact(typeof(LabUnavailableException))]
    public Task DrainMigrate_Ipv6UdpAssociationsOfTheDrainedNode_ContinueOnTheirBucketsNewOwners() => DrainMigrateUdpAsync(ipv6: true);

    private async Task DrainMigrateUdpAsync(bool ipv6)
    {
        var sources = await fixture.SourcesOfAsync(Drained, ipv6);
        await using var traffic = await UdpTrafficAsync(Associations, sources);
        await Task.Delay(TimeSpan.FromSeconds(1));
        var listed = (await fixture.ListAsync(Drained)).Where(s => s.Kind == "udp").ToList();
        Assert.True(listed.Count == Associations && listed.All(s => s.State == "movable"),
            $"node 2 lists {listed.Count} UDP associations of {Associations}: {string.Join(", ", listed.Select(s => s.State).Distinct())}\n{fixture.Describe()}");
        // Each association's line names the relay on the VIP and the client's UDP address: the flow that moves.
        Assert.All(traffic.Flows, f => Assert.Contains(listed, s => s.TargetLocal.Equals(f.Relay) && s.TargetRemote.Equals(f.ClientUdp)));

        var (drain, migrations, answered, cpu, before) = await DrainMigrateAsync(Associations);
        var sentAtMove = traffic.SentNow();
        await Task.Delay(TimeSpan.FromSeconds(2));
        await traffic.StopAsync();
        var why = $"drain: {drain}\nmigrations: {migrations}\n{fixture.Describe()}";

        Assert.True(drain.Succeeded, why);
        Assert.Equal(Associations, migrations.GetProperty("done").GetInt64() - before.Done);
        Assert.True(Refused(migrations) == before.Refused, why);
        var report = AssertContinued(traffic, sentAtMove, why);

        // Each continued on its bucket's new owner: counted in there, out here, and node 2 holds none.
        await AssertOnNewOwnersAsync([.. traffic.Flows.Select(f => f.Source)], sources, before);
        Assert.Equal(0, await fixture.ProxyMetricAsync(Drained, "l2proxy_udp_associations_active"));

        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{Associations} UDP associations ({(ipv6 ? "IPv6" : "IPv4")}), one datagram each way every {DatagramPace.TotalMilliseconds:F0} ms: drain --migrate answered in {answered.TotalMilliseconds:F0} ms: {drain.StdOut.Trim()}"));
        output.WriteLine($"CPU of l2bal and l2proxy during the drain, ticks of 10 ms, nodes 1, 2, 3: {string.Join(", ", cpu)}");
        output.WriteLine(report);
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task DrainMigrate_UdpRelayPortTakenOnThePeers_AssociationStaysOnTheDrainedNodeAndRelays()
    {
        var sources = await fixture.SourcesOfAsync(Drained);
        await using var traffic = await UdpTrafficAsync(Refusals, sources);
        await Task.Delay(TimeSpan.FromSeconds(1));
        // Each relay's port taken on both peers: their restore binds without SO_REUSEADDR, fails, and the association stays.
        var blockers = new List<Socket>();
        try
        {
            foreach (var node in new[] { Lab.Nodes[0], Lab.Nodes[2] })
            {
                foreach (var flow in traffic.Flows)
                {
                    blockers.Add(node.OpenSocket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
                    blockers[^1].Bind(flow.Relay);
                }
            }
            var restoreFailed = RestoreFailed(await MigrateControlTests.MigrationsWhenAsync(Lab, Drained, _ => true));
            var (drain, migrations, _, _, before) = await DrainMigrateAsync(Refusals);
            var sentAtMove = traffic.SentNow();
            await Task.Delay(TimeSpan.FromSeconds(2));
            var listed = (await fixture.ListAsync(Drained)).Where(s => s.Kind == "udp").ToList();
            await traffic.StopAsync();
            var why = $"drain: {drain}\nmigrations: {migrations}\n{fixture.Describe()}";

            Assert.Equal(0, migrations.GetProperty("done").GetInt64() - before.Done);
            Assert.True(RestoreFailed(migrations) - restoreFailed == Refusals, why);
            Assert.True(listed.Count == Refusals && listed.All(s => s.State == "movable"), $"node 2 lists {listed.Count} UDP associations of {Refusals}\n{why}");
            output.WriteLine(AssertContinued(traffic, sentAtMove, why));
        }
        finally
        {
            blockers.ForEach(b => b.Dispose());
        }
    }

    private static long RestoreFailed(System.Text.Json.JsonElement migrations) => migrations.GetProperty("refused").GetProperty("restore-failed").GetInt64();

    /// <summary>
    /// Every control connection intact (neither EOF nor reset), datagrams echoed after <paramref name="sentAtMove"/>,
    /// losses bounded, none twice; the figures as a line.
    /// </summary>
    private static string AssertContinued(UdpTraffic traffic, int[] sentAtMove, string why)
    {
        var report = traffic.Flows.Select((f, i) => (Flow: f, Up: f.Sent - traffic.AtTarget[i].Distinct, Down: traffic.AtTarget[i].Distinct - f.Echoed.Distinct,
            AfterMove: f.Echoed.CountAbove(sentAtMove[i]), Twice: traffic.AtTarget[i].Twice + f.Echoed.Twice)).ToList();
        string Describe((UdpFlow Flow, int Up, int Down, int AfterMove, int Twice) r) =>
            $"{r.Flow.Source} relay {r.Flow.Relay}: sent {r.Flow.Sent}, lost up {r.Up} down {r.Down}, echoed after the move {r.AfterMove}, twice {r.Twice}";
        var cut = traffic.Flows.Where(f => f.ControlCut()).Select(f => f.Source.ToString()).ToList();
        Assert.True(cut.Count == 0, $"{cut.Count} control connections cut: {string.Join(", ", cut)}\n{why}");
        var broken = report.Where(r => r.AfterMove < 10 || r.Up + r.Down > LossBound || r.Twice > 0).Select(Describe).ToList();
        Assert.True(broken.Count == 0, $"{broken.Count} associations broken:\n{string.Join('\n', broken.Take(5))}\n{why}");
        return string.Create(CultureInfo.InvariantCulture,
            $"datagrams sent {report.Sum(r => r.Flow.Sent)}, lost client to target {report.Sum(r => r.Up)}, target to client {report.Sum(r => r.Down)}, most lost by one association {report.Max(r => r.Up + r.Down)}");
    }

    /// <summary><paramref name="count"/> associations from <paramref name="sources"/> (one family) in turn, relaying numbered datagrams to an echo on the target's address of that family.</summary>
    private async Task<UdpTraffic> UdpTrafficAsync(int count, List<IPAddress> sources)
    {
        var family = sources[0].AddressFamily;
        var echo = Lab.Target.OpenSocket(family, SocketType.Dgram, ProtocolType.Udp);
        var traffic = new UdpTraffic(echo);
        try
        {
            echo.Bind(new IPEndPoint(family == AddressFamily.InterNetworkV6 ? ClusterLab.Target6Address : ClusterLab.TargetAddress, 0));
            for (var i = 0; i < count; i++)
            {
                traffic.Flows.Add(await OpenAssociationAsync(i, sources[i % sources.Count]));
            }
            traffic.Start();
            return traffic;
        }
        catch
        {
            await traffic.DisposeAsync();
            throw;
        }
    }

    /// <summary>UDP ASSOCIATE from <paramref name="source"/> (client port announced as 0: learned from its first datagram), and the client's UDP socket.</summary>
    private async Task<UdpFlow> OpenAssociationAsync(int index, IPAddress source)
    {
        bool ipv6 = source.AddressFamily == AddressFamily.InterNetworkV6;
        var control = Lab.Client.OpenSocket(source.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        Socket? udp = null;
        try
        {
            control.Bind(new IPEndPoint(source, 0));
            await control.ConnectAsync(ipv6 ? ClusterLab.ProxyEndPoint6 : Lab.ProxyEndPoint).WithTimeout(Step);
            var (code, relay) = await Socks5Client.HandshakeAsync(control, 3, new IPEndPoint(ipv6 ? IPAddress.IPv6Any : IPAddress.Any, 0)).WithTimeout(Step);
            Assert.True(code == 0, $"UDP ASSOCIATE from {source}: {code} {relay}\n{fixture.Describe()}");
            Assert.Equal(ipv6 ? ClusterLab.Vip6Address : ClusterLab.VipAddress, relay.Address);
            udp = Lab.Client.OpenSocket(source.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            udp.Bind(new IPEndPoint(source, 0));
            return new UdpFlow(index, source, control, udp, relay);
        }
        catch
        {
            control.Dispose();
            udp?.Dispose();
            throw;
        }
    }

    /// <summary>The target: counts each association's numbered datagrams and echoes each back to where it came from (the relay's target-facing socket).</summary>
    private static async Task EchoAsync(Socket echo, SeqCount[] received, CancellationToken stop)
    {
        var buffer = new byte[2048];
        try
        {
            while (true)
            {
                var r = await echo.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(echo.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0), stop);
                var index = BinaryPrimitives.ReadInt32BigEndian(buffer);
                if (r.ReceivedBytes != DatagramBytes || index < 0 || index >= received.Length)
                {
                    continue;
                }
                received[index].Add(BinaryPrimitives.ReadInt32BigEndian(buffer.AsSpan(4)));
                await echo.SendToAsync(buffer.AsMemory(0, r.ReceivedBytes), SocketFlags.None, r.RemoteEndPoint, stop);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>The associations of a test, the target's echo, and the loops between them (bounded in count and time).</summary>
    private sealed class UdpTraffic(Socket echo) : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stopSending = new();
        private readonly CancellationTokenSource _stopEcho = new();
        private readonly List<Task> _running = [];
        private Task? _echoing;

        public List<UdpFlow> Flows { get; } = [];

        /// <summary>What the target received of each association.</summary>
        public SeqCount[] AtTarget { get; private set; } = [];

        public void Start()
        {
            AtTarget = [.. Flows.Select(_ => new SeqCount())];
            _echoing = EchoAsync(echo, AtTarget, _stopEcho.Token);
            var target = (IPEndPoint)echo.LocalEndPoint!;
            _running.AddRange(Flows.Select(f => Task.WhenAll(f.SendAsync(target, _stopSending.Token), f.ReceiveAsync(_stopEcho.Token))));
        }

        public int[] SentNow() => [.. Flows.Select(f => f.Sent)];

        /// <summary>Stops sending; the last echoes come back within a second, then the receivers and the echo stop.</summary>
        public async Task StopAsync()
        {
            await _stopSending.CancelAsync();
            await Task.Delay(TimeSpan.FromSeconds(1));
            await _stopEcho.CancelAsync();
            await Task.WhenAll(_running).WithTimeout(TimeSpan.FromSeconds(10));
        }

        public async ValueTask DisposeAsync()
        {
            await _stopSending.CancelAsync();
            await _stopEcho.CancelAsync();
            if (_echoing is not null)
            {
                await _echoing.WithTimeout(TimeSpan.FromSeconds(10));
            }
            Flows.ForEach(f => f.Dispose());
            echo.Dispose();
            _stopSending.Dispose();
            _stopEcho.Dispose();
        }
    }

    /// <summary>Sequence numbers seen: how many distinct, how many twice.</summary>
    private sealed class SeqCount
    {
        private readonly HashSet<int> _seen = [];

        public int Distinct
        {
            get
            {
                lock (_seen)
                {
                    return _seen.Count;
                }
            }
        }

        public int Twice { get; private set; }

        public void Add(int seq)
        {
            lock (_seen)
            {
                if (!_seen.Add(seq))
                {
                    Twice++;
                }
            }
        }

        public int CountAbove(int seq)
        {
            lock (_seen)
            {
                return _seen.Count(s => s >= seq);
            }
        }
    }

    /// <summary>One association of the test: its control connection, the client's UDP socket, datagrams sent and echoes received.</summary>
    private sealed class UdpFlow(int index, IPAddress source, Socket control, Socket udp, IPEndPoint relay) : IDisposable
    {
        private int _sent;

        public IPAddress Source => source;

        public IPEndPoint Relay => relay;

        public IPEndPoint ClientUdp => (IPEndPoint)udp.LocalEndPoint!;

        public int Sent => Volatile.Read(ref _sent);

        public SeqCount Echoed { get; } = new();

        /// <summary>Datagram n carries the association's index and n; the relay's header names the target.</summary>
        public async Task SendAsync(IPEndPoint target, CancellationToken stop)
        {
            var payload = new byte[DatagramBytes];
            BinaryPrimitives.WriteInt32BigEndian(payload, index);
            try
            {
                for (var seq = 0; seq < MaxDatagrams && !stop.IsCancellationRequested; seq++)
                {
                    BinaryPrimitives.WriteInt32BigEndian(payload.AsSpan(4), seq);
                    await udp.SendToAsync(Socks5Client.WrapUdp(target, payload), SocketFlags.None, relay, stop);
                    Interlocked.Increment(ref _sent);
                    await Task.Delay(DatagramPace, stop);
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        public async Task ReceiveAsync(CancellationToken stop)
        {
            var buffer = new byte[2048];
            try
            {
                while (true)
                {
                    var n = await udp.ReceiveAsync(buffer, SocketFlags.None, stop);
                    var payload = Socks5Client.UnwrapUdp(buffer.AsSpan(0, n));
                    if (payload.Length == DatagramBytes && BinaryPrimitives.ReadInt32BigEndian(payload) == index)
                    {
                        Echoed.Add(BinaryPrimitives.ReadInt32BigEndian(payload[4..]));
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        /// <summary>The control connection ended (EOF or reset pending): the association would have ended with it.</summary>
        public bool ControlCut() => control.Poll(0, SelectMode.SelectRead) || control.Poll(0, SelectMode.SelectError);

        public void Dispose()
        {
            control.Dispose();
            udp.Dispose();
        }
    }
}
