using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using L2Balance.Proxy.Migration;
using L2Balance.Proxy.Protocol;
using L2Balance.Tests.Common;

namespace L2Balance.Lab.Tests.Proxy;

/// <summary>
/// The lab of the migration primitives (issue 19): nodes A and B on one switch both hold the service
/// address (as every node holds the VIP in single-IP mode); a client and a target whose neighbour entry
/// for it names A's MAC, switched to B's when sessions move. A relays in this process, both legs on the
/// service address; B restores what A froze, received over the migration channel between their own addresses.
/// </summary>
internal sealed partial class MigrationLab : IDisposable
{
    public static readonly IPAddress Service = IPAddress.Parse("198.18.61.100");
    public static readonly IPAddress ClientAddress = IPAddress.Parse("198.18.61.10");
    public static readonly IPAddress TargetAddress = IPAddress.Parse("198.18.61.20");
    public static readonly IPAddress NodeAAddress = IPAddress.Parse("198.18.61.1");
    public static readonly IPAddress NodeBAddress = IPAddress.Parse("198.18.61.2");
    private const int ServicePort = 1080;
    private const int TargetPort = 9000;
    private const int ChannelPort = 7400;

    private static readonly TimeSpan Step = TimeSpan.FromSeconds(10);
    private readonly LabNetwork _lab;
    private readonly Socket? _serviceOnA;
    private readonly Socket _targetListener;
    private readonly Socket _channelListener;
    private readonly NamespaceSocketSupply _clientSockets;
    private readonly NamespaceSocketSupply _aSockets;
    private readonly NamespaceSocketSupply _bSockets;
    private readonly string _macA;
    private readonly string _macB;
    private readonly byte[] _channelKey = MigrationRecords.DeriveChannelKey("lab cluster key of the migration tests"u8);

    /// <param name="relayInProcess">True: A's relay runs in this process (the primitives); false: l2proxy serves on A and B (<see cref="StartProxiesAsync"/>).</param>
    public MigrationLab(bool relayInProcess = true)
    {
        _lab = LabNetwork.Create();
        var sw = _lab.AddSwitch("sw");
        Client = Host(sw, "client", ClientAddress);
        NodeA = Host(sw, "nodea", NodeAAddress);
        NodeB = Host(sw, "nodeb", NodeBAddress);
        Target = Host(sw, "target", TargetAddress);
        NodeA.AddAddress("eth0", $"{Service}/32");
        NodeB.AddAddress("eth0", $"{Service}/32");
        _macA = Mac(NodeA);
        _macB = Mac(NodeB);
        // Static entries, as the cluster MAC is in production: ARP for the shared address would answer from both nodes.
        Neighbour(Client, Service, _macA);
        Neighbour(Target, Service, _macA);
        Neighbour(NodeB, ClientAddress, Mac(Client));
        Neighbour(NodeB, TargetAddress, Mac(Target));

        _serviceOnA = relayInProcess ? Listen(NodeA, new IPEndPoint(Service, ServicePort)) : null;
        _targetListener = Listen(Target, new IPEndPoint(TargetAddress, TargetPort));
        _channelListener = Listen(NodeB, new IPEndPoint(NodeBAddress, ChannelPort));
        _clientSockets = new NamespaceSocketSupply(Client, AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp, 16);
        _aSockets = new NamespaceSocketSupply(NodeA, AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp, 16);
        _bSockets = new NamespaceSocketSupply(NodeB, AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp, 16);
    }

    public LabHost Client { get; }

    public LabHost NodeA { get; }

    public LabHost NodeB { get; }

    public LabHost Target { get; }

    /// <summary>Opens a relayed session client ↔ A ↔ target and starts its streams both ways.</summary>
    public async Task<LabSession> OpenSessionAsync(int seed, StreamPace pace, CancellationToken stop)
    {
        var client = await _clientSockets.TakeAsync(CancellationToken.None).AsTask().WithTimeout(Step);
        await client.ConnectAsync(new IPEndPoint(Service, ServicePort), CancellationToken.None).AsTask().WithTimeout(Step);
        var clientLeg = await _serviceOnA!.AcceptAsync(CancellationToken.None).AsTask().WithTimeout(Step);
        var targetLeg = await _aSockets.TakeAsync(CancellationToken.None).AsTask().WithTimeout(Step);
        targetLeg.Bind(new IPEndPoint(Service, 0));
        await targetLeg.ConnectAsync(new IPEndPoint(TargetAddress, TargetPort), CancellationToken.None).AsTask().WithTimeout(Step);
        var target = await _targetListener.AcceptAsync(CancellationToken.None).AsTask().WithTimeout(Step);
        var relay = new LabRelay(clientLeg, targetLeg, [], []);
        return new LabSession(client, target, relay, seed, pace, stop);
    }

    /// <summary>Drops the input of the client's and the target's packets on A: the filter exception that keeps a frozen state from going stale.</summary>
    public Task DropOnAAsync() => Nft(NodeA, """
        table inet l2lab_migration {
            chain input {
                type filter hook input priority -300; policy accept;
                ip saddr { 198.18.61.10, 198.18.61.20 } drop
            }
        }
        """);

    public Task AcceptOnAAsync() => Nft(NodeA, "delete table inet l2lab_migration\n");

    /// <summary>
    /// B sends no reset for a flow it holds no socket of (as a cluster node's filter: docs/design.md#migration-filter): its stack's
    /// resets carry no mark, a restored socket's carry <see cref="LostMark"/>, so only a reset that l2proxy's abort sends leaves.
    /// </summary>
    public Task DropStrayResetsOnBAsync() => Nft(NodeB, """
        table inet l2lab_migration {
            chain output {
                type filter hook output priority 0; policy accept;
                ip daddr { 198.18.61.10, 198.18.61.20 } tcp flags rst meta mark 0 drop
            }
        }
        """);

    /// <summary>The mark of B's restored sockets in a lost move (<see cref="DropStrayResetsOnBAsync"/>).</summary>
    private const uint LostMark = 0x4c32;

    /// <summary>Points the client's and the target's neighbour entry for the service address at B.</summary>
    public void SwitchToB()
    {
        Neighbour(Client, Service, _macB);
        Neighbour(Target, Service, _macB);
    }

    public void RemoveServiceFromB() => Ip("-n", NodeB.Namespace, "addr", "del", $"{Service}/32", "dev", "eth0");

    /// <summary>
    /// Moves <paramref name="sessions"/> from A to B over the migration channel: A freezes both legs of
    /// each and sends its state; B restores both legs, thaws them, starts its relay and acknowledges;
    /// A closes a moved session's frozen sockets silently, or unfreezes and resumes one that B refused.
    /// The channel is open before <paramref name="dropFlows"/> runs; the caller switches the segment after.
    /// </summary>
    /// <remarks>
    /// With <paramref name="lostOnB"/> B restores each session, then resets its legs instead of the thaw (<see cref="TcpRepair.Abort"/>)
    /// and answers moved: a session lost at Go, as l2proxy ends one whose thaw fails (docs/design.md#failure-paths-of-a-move).
    /// </remarks>
    public async Task<MigrationRun> MigrateAsync(IReadOnlyList<LabSession> sessions, Func<Task> dropFlows, bool lostOnB = false)
    {
        using var channelA = await _aSockets.TakeAsync(CancellationToken.None).AsTask().WithTimeout(Step);
        channelA.Bind(new IPEndPoint(NodeAAddress, 0));
        var accept = _channelListener.AcceptAsync();
        await channelA.ConnectAsync(new IPEndPoint(NodeBAddress, ChannelPort)).WithTimeout(Step);
        var channelB = await accept.WithTimeout(Step);
        var openA = MigrationChannel.OpenAsync(channelA, _channelKey, initiator: true, CancellationToken.None);
        var openB = MigrationChannel.OpenAsync(channelB, _channelKey, initiator: false, CancellationToken.None);
        using var a = await openA.WithTimeout(Step);
        using var b = await openB.WithTimeout(Step);

        var dropped = Stopwatch.GetTimestamp();
        await dropFlows();
        var afterDrop = Stopwatch.GetTimestamp();
        var receiver = Task.Run(() => ReceiveOnBAsync(b, sessions.Count, lostOnB));
        await Task.WhenAll(sessions.Select(s => s.Relay.PauseAsync())).WithTimeout(Step);
        var freeze = new List<TimeSpan>();
        var writer = new ArrayBufferWriter<byte>();
        foreach (var session in sessions)
        {
            var started = Stopwatch.GetTimestamp();
            var state = new SessionState(SessionKind.TcpRelay, [TcpRepair.Freeze(session.Relay.ClientLeg), TcpRepair.Freeze(session.Relay.TargetLeg)],
                session.Relay.HeldToTarget, session.Relay.HeldToClient, null);
            freeze.Add(Stopwatch.GetElapsedTime(started));
            writer.ResetWrittenCount();
            SessionStateCodec.Write(state, writer);
            await a.SendAsync(writer.WrittenMemory, CancellationToken.None).WithTimeout(Step);
        }

        int moved = 0;
        foreach (var session in sessions)
        {
            var ack = await a.ReceiveAsync(CancellationToken.None).WithTimeout(Step);
            if (ack is [1])
            {
                TcpRepair.CloseFrozen(session.Relay.ClientLeg);
                TcpRepair.CloseFrozen(session.Relay.TargetLeg);
                moved++;
            }
            else
            {
                TcpRepair.Unfreeze(session.Relay.ClientLeg);
                TcpRepair.Unfreeze(session.Relay.TargetLeg);
                session.Relay.Resume();
            }
        }

        var acked = Stopwatch.GetTimestamp();
        var (restore, relays, errors) = await receiver.WithTimeout(Step);
        for (int i = 0; i < sessions.Count; i++)
        {
            sessions[i].MovedTo = relays[i];
        }

        return new MigrationRun(moved, freeze, restore, errors, dropped, afterDrop, acked);
    }

    private async Task<(List<TimeSpan> Restore, List<LabRelay?> Relays, List<string> Errors)> ReceiveOnBAsync(MigrationChannel channel, int count, bool lost)
    {
        var restore = new List<TimeSpan>();
        var relays = new List<LabRelay?>();
        var errors = new List<string>();
        for (int i = 0; i < count; i++)
        {
            var bytes = await channel.ReceiveAsync(CancellationToken.None);
            var started = Stopwatch.GetTimestamp();
            if (SessionStateCodec.TryParse(bytes, out var state, out var reason) != ParseStatus.Ok)
            {
                errors.Add($"state refused: {reason}");
                relays.Add(null);
                await channel.SendAsync(new byte[] { 0 }, CancellationToken.None);
                continue;
            }

            var sockets = new List<Socket>();
            try
            {
                foreach (var leg in state!.Legs)
                {
                    var socket = await _bSockets.TakeAsync(CancellationToken.None);
                    sockets.Add(socket);
                    TcpRepair.Restore(socket, leg);
                }

                if (lost)
                {
                    foreach (var socket in sockets)
                    {
                        TcpRepair.Mark(socket, LostMark);
                        TcpRepair.Abort(socket);
                    }
                    relays.Add(null);
                    await channel.SendAsync(new byte[] { 1 }, CancellationToken.None);
                    continue;
                }

                for (int l = 0; l < sockets.Count; l++)
                {
                    TcpRepair.Thaw(sockets[l], state.Legs[l]);
                }
            }
            catch (MigrationException e)
            {
                errors.Add(e.Message);
                sockets.ForEach(TcpRepair.CloseFrozen);
                relays.Add(null);
                await channel.SendAsync(new byte[] { 0 }, CancellationToken.None);
                continue;
            }

            restore.Add(Stopwatch.GetElapsedTime(started));
            relays.Add(new LabRelay(sockets[0], sockets[1], state.HeldToTarget, state.HeldToClient));
            await channel.SendAsync(new byte[] { 1 }, CancellationToken.None);
        }

        return (restore, relays, errors);
    }

    public string Describe() => _lab.ProcessLogs();

    public void Dispose()
    {
        _clientSockets.Dispose();
        _aSockets.Dispose();
        _bSockets.Dispose();
        _serviceOnA?.Dispose();
        _targetListener.Dispose();
        _channelListener.Dispose();
        _lab.Dispose();
    }

    private LabHost Host(LabHost sw, string name, IPAddress address)
    {
        var host = _lab.AddHost(name);
        _lab.ConnectToSwitch(sw, host, "eth0");
        host.AddAddress("eth0", $"{address}/24");
        return host;
    }

    private static Socket Listen(LabHost host, IPEndPoint endpoint)
    {
        var socket = host.OpenSocket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(endpoint);
        socket.Listen(512);
        return socket;
    }

    private static string Mac(LabHost host) =>
        Ip("-n", host.Namespace, "-br", "link", "show", "eth0").Split(' ', StringSplitOptions.RemoveEmptyEntries)[2];

    private static void Neighbour(LabHost host, IPAddress address, string mac) =>
        Ip("-n", host.Namespace, "neigh", "replace", address.ToString(), "lladdr", mac, "dev", "eth0", "nud", "permanent");

    /// <summary>Runs ip(8) directly, without a shell or netns exec: the switch is inside the measured pause.</summary>
    private static string Ip(params string[] args)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        args.ToList().ForEach(start.ArgumentList.Add);
        using var process = Process.Start(start) ?? throw new LabCommandException("could not start ip");
        var stdout = process.StandardOutput.ReadToEnd();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode == 0 ? stdout : throw new LabCommandException($"ip {string.Join(' ', args)}: {stderr}");
    }

    private static async Task Nft(LabHost host, string script) =>
        (await host.RunAsync(LabBinaries.Require("nft", "nftables"), ["-f", "-"], Step, script)).EnsureSuccess();
}

/// <summary>How fast a session's streams write: <see cref="Chunk"/> bytes every <see cref="Interval"/>.</summary>
internal readonly record struct StreamPace(int Chunk, TimeSpan Interval);

/// <summary>What one migration did: sessions moved, per-session freeze (both legs, A) and restore (both legs, B) times, refusals.</summary>
/// <remarks>
/// <see cref="Stopwatch"/> timestamps: <see cref="Dropped"/> when the drop of the flows on A began, <see cref="AfterDrop"/>
/// when it was in place, <see cref="Acked"/> when B had acknowledged every session.
/// </remarks>
internal sealed record MigrationRun(int Moved, IReadOnlyList<TimeSpan> Freeze, IReadOnlyList<TimeSpan> Restore, IReadOnlyList<string> Errors, long Dropped, long AfterDrop, long Acked);
