using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace L2Balance.Lab.Cluster;

/// <summary>What a flood sent: frames, time and the rate reached.</summary>
/// <param name="Frames">Frames the kernel took.</param>
/// <param name="Failures">Sends the kernel refused (ENOBUFS and the like).</param>
/// <param name="Elapsed">How long the flood ran.</param>
public sealed record FloodResult(long Frames, long Failures, TimeSpan Elapsed)
{
    /// <summary>Frames per second.</summary>
    public double Rate => Elapsed > TimeSpan.Zero ? Frames / Elapsed.TotalSeconds : 0;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Frames} frames in {Elapsed.TotalSeconds:0.00} s ({Rate:0} frames/s), {Failures} refused");
}

/// <summary>
/// A host on the cluster's segment without the key (issue 14): a raw AF_PACKET socket (packet(7))
/// in its own namespace, on the switch like a node, that captures the nodes' adverts and sends
/// frames of the advert EtherType at the highest rate one thread reaches, bounded in count and time.
/// </summary>
public sealed partial class SegmentAttacker : IDisposable
{
    /// <summary>The advert EtherType (IEEE 802 local experimental 1), as l2bal sends it.</summary>
    public const ushort AdvertEtherType = 0x88B5;

    /// <summary>The attacker's MAC: not a node's, not the router's.</summary>
    public const string Mac = "02:00:00:00:00:66";

    private readonly Socket _socket;

    private SegmentAttacker(LabHost host, Socket socket)
    {
        Host = host;
        _socket = socket;
    }

    /// <summary>The attacker's namespace.</summary>
    public LabHost Host { get; }

    /// <summary>Adds a host to <paramref name="lab"/>'s segment (a port on the switch) and opens its packet socket.</summary>
    public static SegmentAttacker Join(ClusterLab lab, string name = "attacker")
    {
        ArgumentNullException.ThrowIfNull(lab);
        var host = lab.Network.AddHost(name);
        lab.Network.ConnectToSwitch(lab.Switch, host, "eth0");
        LabNetwork.Ip(["-n", host.Namespace, "link", "set", "eth0", "address", Mac]);
        return Open(host, "eth0");
    }

    /// <summary>Opens the packet socket on <paramref name="interfaceName"/> of <paramref name="host"/> (already linked).</summary>
    public static SegmentAttacker Open(LabHost host, string interfaceName)
    {
        ArgumentNullException.ThrowIfNull(host);
        var link = CommandRunner.Run("ip", ["-n", host.Namespace, "-o", "link", "show", interfaceName]).EnsureSuccess().StdOut;
        var index = LinkLayerEndPoint.IndexIn(link);
        var socket = host.OpenSocket(AddressFamily.Packet, SocketType.Raw, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new LinkLayerEndPoint(AdvertEtherType, index));
            socket.ReceiveTimeout = 1000;
            return new SegmentAttacker(host, socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Captures <paramref name="count"/> advert frames (whole Ethernet frames) as the nodes send them, within <paramref name="timeout"/>.</summary>
    public IReadOnlyList<byte[]> Capture(int count, TimeSpan timeout)
    {
        var frames = new List<byte[]>();
        var buffer = new byte[2048];
        var deadline = Stopwatch.StartNew();
        while (frames.Count < count && deadline.Elapsed < timeout)
        {
            try
            {
                var n = _socket.Receive(buffer);
                frames.Add(buffer[..n]);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                // Nothing within a second: try again until the deadline.
            }
        }

        return frames;
    }

    /// <summary>
    /// Sends <paramref name="next"/>(i) for i = 0, 1, … as fast as one thread can, until
    /// <paramref name="duration"/> passes or <paramref name="maxFrames"/> are sent. The frame
    /// returned may be changed by the next call (the sender copies nothing).
    /// </summary>
    public FloodResult Flood(Func<long, byte[]> next, TimeSpan duration, long maxFrames)
    {
        ArgumentNullException.ThrowIfNull(next);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(duration, TimeSpan.FromMinutes(1));
        var clock = Stopwatch.StartNew();
        long sent = 0, failed = 0;
        for (long i = 0; i < maxFrames; i++)
        {
            // The clock is read once per 64 frames: a few ns each, but at millions of frames they add up.
            if ((i & 63) == 0 && clock.Elapsed >= duration)
            {
                break;
            }
            try
            {
                _socket.Send(next(i));
                sent++;
            }
            catch (SocketException)
            {
                failed++;
            }
        }

        return new FloodResult(sent, failed, clock.Elapsed);
    }

    /// <summary>Runs <see cref="Flood"/> on a thread of its own.</summary>
    public Task<FloodResult> FloodAsync(Func<long, byte[]> next, TimeSpan duration, long maxFrames) =>
        Task.Factory.StartNew(() => Flood(next, duration, maxFrames), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    public void Dispose() => _socket.Dispose();
}
