using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Net;

/// <summary>Why a received ARP frame got no answer; one member per reason (docs/conventions.md §6).</summary>
internal enum ArpIgnoreReason
{
    /// <summary>Not an untagged Ethernet II frame (<see cref="EthernetFrame.TryParse"/> refused it).</summary>
    BadEthernet,

    /// <summary>Not IPv4-over-Ethernet ARP (<see cref="ArpPacket.TryParse"/> refused it).</summary>
    BadArp,

    /// <summary>Addressed to another host's unicast MAC (seen only when the interface is promiscuous).</summary>
    NotAddressedToUs,

    /// <summary>A reply, a gratuitous ARP or anything other than a request.</summary>
    NotRequest,

    /// <summary>A who-has for an address other than the VIP.</summary>
    NotForVip,

    /// <summary>A who-has for the VIP whose sender MAC is a group address: the reply would flood the segment.</summary>
    GroupSender,

    /// <summary>A who-has for the VIP while <see cref="ArpResponder.Enabled"/> is false.</summary>
    Disabled,

    /// <summary>A who-has for the VIP beyond its requester's budget (<see cref="ArpAnswerLimiter"/>).</summary>
    RequesterLimit,

    /// <summary>A who-has for the VIP beyond the node's total budget (<see cref="ArpAnswerLimiter"/>).</summary>
    TotalLimit,
}

/// <summary>
/// Answers who-has for the VIP with the cluster MAC, on an AF_PACKET socket that receives ARP only.
/// The kernel never answers for the VIP itself (VIP on lo, arp_ignore=1, arp_announce=2;
/// docs/design.md#arp-suppression), so a node whose responder is disabled or gone is simply silent.
/// </summary>
/// <remarks>
/// Replies carry Ethernet source = the node's own MAC and ARP sender MAC = the cluster MAC
/// (<see cref="ArpPacket.WriteReplyFrame"/>); in unicast-flood mode a frame sourced from the cluster
/// MAC would make the switch learn it on one port. Requests unicast to the cluster MAC (a client's
/// NUD probe of a STALE entry) are answered like broadcast ones: the client otherwise falls back to
/// broadcast only after 3 unanswered probes (docs/design.md#gratuitous-arp-and-nud-probes).
/// Answers are rate-limited per requester and in total (<see cref="ArpAnswerLimiter"/>). Every ARP
/// frame is also checked for spoofing (<see cref="SpoofCheck"/>), and in unicast-flood mode a
/// second socket watches for frames sourced from the cluster MAC; spoofs are counted and
/// signalled to the daemon's loop (<see cref="Spoofed"/>), which re-announces
/// (docs/design.md#spoofing). A receive error (ENETDOWN when the interface goes down on the
/// node) or an unexpected exception is counted, logged at most once per 10 s, and followed by a
/// back-off, never by the end of the loop.
/// </remarks>
internal sealed partial class ArpResponder : IAsyncDisposable
{
    /// <summary>The first back-off after a receive error; it doubles per error in a row.</summary>
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(10);

    /// <summary>The longest back-off: a socket that keeps failing costs one receive a second.</summary>
    private static readonly TimeSpan LongestBackoff = TimeSpan.FromSeconds(1);

    private readonly PacketSocket? _socket;
    private readonly PacketSocket? _watch;
    private readonly IPAddress? _vip;
    private readonly MacAddress _clusterMac;
    private readonly SpoofCheck _spoofCheck;
    private readonly ArpAnswerLimiter _limiter = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly BalancerLog _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly long[] _ignored = new long[Enum.GetValues<ArpIgnoreReason>().Length];
    private readonly long[] _spoofs = new long[Enum.GetValues<SpoofKind>().Length];
    private readonly long[] _offenders = new long[Enum.GetValues<SpoofKind>().Length];
    private Task _loop = Task.CompletedTask;
    private Task _watchLoop = Task.CompletedTask;
    private int _disposed;
    private int _spoofSignalled;
    private volatile bool _enabled;
    private long _requestsSeen;
    private long _repliesSent;
    private long _sendErrors;
    private long _announcements;
    private long _loopFaults;

    private ArpResponder(PacketSocket? socket, PacketSocket? watch, IPAddress? vip, MacAddress clusterMac, BalancerLog log, PacketSocket? nd = null, IPAddress? vip6 = null)
    {
        _socket = socket;
        _watch = watch;
        _nd = nd;
        _vip6 = vip6;
        _vip = vip;
        _clusterMac = clusterMac;
        _spoofCheck = new SpoofCheck(vip, clusterMac);
        _log = log;
    }

    /// <summary>
    /// Opens the ARP socket on <paramref name="interfaceName"/> (in the calling thread's network
    /// namespace) and adds <paramref name="clusterMac"/> to the interface's receive filter for the
    /// socket's lifetime, so NUD probes unicast to it arrive on real NICs too. For a unicast
    /// cluster MAC (unicast-flood mode) also opens the watch for frames sourced from it: only there
    /// does such a frame mislead a switch (one sourced from a group address is invalid and dropped).
    /// Starts disabled. With an IPv6 VIP alone (<paramref name="vip"/> null) there is no ARP socket: the ND
    /// socket alone answers and announces, and adds the cluster MAC (docs/design.md#an-ipv6-vip-alone).
    /// </summary>
    public static ArpResponder Open(string interfaceName, IPAddress? vip, MacAddress clusterMac, BalancerLog? log = null, IPAddress? vip6 = null)
    {
        if (vip is null ? vip6 is null : vip.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException($"The VIP must be IPv4 for ARP, or absent beside an IPv6 VIP: {vip}.", nameof(vip));
        }

        PacketSocket? socket = null;
        PacketSocket? watch = null;
        PacketSocket? nd = null;
        try
        {
            if (vip is not null)
            {
                socket = PacketSocket.Open(interfaceName, EthernetFrame.EtherTypeArp);
                CheckClusterMac(socket, clusterMac);
                socket.AddMembership(clusterMac);
            }
            if (vip6 is not null)
            {
                nd = OpenNeighborSocket(interfaceName, vip6, clusterMac);
                CheckClusterMac(nd, clusterMac);
            }
            if (!clusterMac.IsMulticast)
            {
                watch = PacketSocket.OpenSourceWatch(interfaceName, clusterMac);
            }
            return new ArpResponder(socket, watch, vip, clusterMac, log ?? new BalancerLog(TextWriter.Null), nd, vip6);
        }
        catch
        {
            nd?.Dispose();
            watch?.Dispose();
            socket?.Dispose();
            throw;
        }
    }

    private static void CheckClusterMac(PacketSocket socket, MacAddress clusterMac)
    {
        if (socket.InterfaceMac == clusterMac)
        {
            throw new ArgumentException("The cluster MAC must differ from the interface's own MAC.", nameof(clusterMac));
        }
    }

    /// <summary>The node's own MAC (Ethernet source of every frame sent).</summary>
    public MacAddress OwnMac => (_socket ?? _nd!).InterfaceMac;

    /// <summary>The MAC announced for the VIP.</summary>
    public MacAddress ClusterMac => _clusterMac;

    /// <summary>
    /// Whether who-has for the VIP is answered; requests are counted as
    /// <see cref="ArpIgnoreReason.Disabled"/> while it is off. The daemon turns it on at start and
    /// leaves it on: every running node answers identically (the cluster MAC), whatever it holds.
    /// </summary>
    public bool Enabled
    {
        get => _enabled;
        set => _enabled = value;
    }

    /// <summary>Who-has requests for the VIP seen (answered or not).</summary>
    public long RequestsSeen => Interlocked.Read(ref _requestsSeen);

    /// <summary>Replies sent (gratuitous ARPs not included).</summary>
    public long RepliesSent => Interlocked.Read(ref _repliesSent);

    /// <summary>Replies or gratuitous ARPs the kernel refused to send.</summary>
    public long SendErrors => Interlocked.Read(ref _sendErrors);

    /// <summary>Gratuitous ARPs sent.</summary>
    public long Announcements => Interlocked.Read(ref _announcements);

    /// <summary>Errors the ARP socket returned instead of a frame (0 without one: an IPv6 VIP alone).</summary>
    public long SocketErrors => _socket?.Errors ?? 0;

    /// <summary>Errors the cluster-MAC watch returned instead of a frame (0 without a watch).</summary>
    public long WatchErrors => _watch?.Errors ?? 0;

    /// <summary>Unexpected exceptions the receive loops survived.</summary>
    public long LoopFaults => Interlocked.Read(ref _loopFaults);

    /// <summary>
    /// Called (from the receive loop) when a spoofed frame arrives and none has been signalled since
    /// the last <see cref="TakeSpoofs"/>: the daemon wakes its loop, at most once per step whatever
    /// the attacker's rate.
    /// </summary>
    public Action? Spoofed { get; set; }

    /// <summary>Spoofed frames of <paramref name="kind"/> seen.</summary>
    public long Spoofs(SpoofKind kind) => Interlocked.Read(ref _spoofs[(int)kind]);

    /// <summary>
    /// Copies the spoof totals and the MAC each kind last named (indexed by <see cref="SpoofKind"/>)
    /// and re-arms <see cref="Spoofed"/>.
    /// </summary>
    public void TakeSpoofs(Span<long> totals, Span<MacAddress> offenders)
    {
        Volatile.Write(ref _spoofSignalled, 0);
        for (var i = 0; i < _spoofs.Length; i++)
        {
            totals[i] = Interlocked.Read(ref _spoofs[i]);
            offenders[i] = new MacAddress((ulong)Interlocked.Read(ref _offenders[i]));
        }
    }

    /// <summary>Frames ignored for <paramref name="reason"/>.</summary>
    public long Ignored(ArpIgnoreReason reason) => Interlocked.Read(ref _ignored[(int)reason]);

    /// <summary>Starts the receive loop (once).</summary>
    public void Start()
    {
        if (!_loop.IsCompleted || _stop.IsCancellationRequested)
        {
            throw new InvalidOperationException("The responder is already running or stopped.");
        }

        if (_socket is { } socket)
        {
            var reply = new byte[EthernetFrame.MinimumLength];
            _loop = Task.Run(() => ReceiveLoopAsync(socket, "arp", frame => OnArpFrame(frame, reply), _stop.Token));
        }
        if (_watch is { } watch)
        {
            _watchLoop = Task.Run(() => ReceiveLoopAsync(watch, "watch", frame => NoteSpoof(_spoofCheck.Classify(frame, out var mac), mac), _stop.Token));
        }
        if (_nd is { } nd)
        {
            var answer = new byte[NeighborPacket.AdvertisementFrameLength];
            _ndLoop = Task.Run(() => ReceiveLoopAsync(nd, "nd", frame => OnNeighborFrame(frame, answer), _stop.Token));
        }
    }

    /// <summary>
    /// Broadcasts a gratuitous ARP "VIP is at the cluster MAC": refreshes existing neighbour
    /// entries on the segment (it does not create missing ones with arp_accept=0); then the
    /// unsolicited neighbour advertisement of the IPv6 VIP, when there is one (alone: only that).
    /// </summary>
    public void SendGratuitous()
    {
        Span<byte> frame = stackalloc byte[EthernetFrame.MinimumLength];
        try
        {
            if (_socket is { } socket)
            {
                int n = ArpPacket.WriteGratuitousFrame(frame, OwnMac, _clusterMac, _vip!);
                socket.Send(frame[..n]);
                Interlocked.Increment(ref _announcements);
            }
            SendUnsolicitedAdvertisement();
        }
        catch (IOException)
        {
            Interlocked.Increment(ref _sendErrors);
            throw;
        }
    }

    /// <summary>Decides what to do with one received frame; returns the reason it is ignored, or null to answer.</summary>
    internal ArpIgnoreReason? Classify(ReadOnlySpan<byte> frame, out ArpPacket request)
    {
        request = default;
        if (!EthernetFrame.TryParse(frame, out var ethernet, out _))
        {
            return ArpIgnoreReason.BadEthernet;
        }

        if (!ethernet.Destination.IsBroadcast && ethernet.Destination != OwnMac && ethernet.Destination != _clusterMac)
        {
            return ArpIgnoreReason.NotAddressedToUs;
        }

        if (!ArpPacket.TryParse(frame[EthernetFrame.HeaderLength..], out request, out _))
        {
            return ArpIgnoreReason.BadArp;
        }

        if (request.Operation != ArpOperation.Request)
        {
            return ArpIgnoreReason.NotRequest;
        }

        if (!request.TargetIp.Equals(_vip))
        {
            return ArpIgnoreReason.NotForVip;
        }

        Interlocked.Increment(ref _requestsSeen);
        if (!request.IsRequestFor(_vip!))
        {
            return ArpIgnoreReason.GroupSender;
        }

        return _enabled ? null : ArpIgnoreReason.Disabled;
    }

    /// <summary>Stops the receive loop and closes the socket (dropping its memberships). Never throws.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_loop, _watchLoop, _ndLoop).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Stopping: the loops end only by the cancellation.
        }
        finally
        {
            _watch?.Dispose();
            _nd?.Dispose();
            _socket?.Dispose();
            _stop.Dispose();
        }
    }

    /// <summary>One frame of the ARP socket: a spoof is noted, a who-has for the VIP answered within the budgets.</summary>
    private void OnArpFrame(ReadOnlySpan<byte> frame, byte[] reply)
    {
        var spoof = _spoofCheck.Classify(frame, out var offender);
        // With a watch, a frame from the cluster MAC is the watch's to count (it sees every EtherType).
        NoteSpoof(spoof == SpoofKind.ClusterMacSource && _watch is not null ? SpoofKind.None : spoof, offender);
        var reason = Classify(frame, out var request) ?? _limiter.Check(request.SenderMac, _clock.Elapsed) switch
        {
            ArpLimit.Requester => ArpIgnoreReason.RequesterLimit,
            ArpLimit.Total => ArpIgnoreReason.TotalLimit,
            _ => (ArpIgnoreReason?)null,
        };
        if (reason is { } ignored)
        {
            Interlocked.Increment(ref _ignored[(int)ignored]);
            return;
        }

        int length = ArpPacket.WriteReplyFrame(reply, request, OwnMac, _clusterMac);
        try
        {
            _socket!.Send(reply.AsSpan(0, length));
            Interlocked.Increment(ref _repliesSent);
        }
        catch (IOException)
        {
            // ENOBUFS, ENETDOWN and the like: the requester retries; counted for metrics.
            Interlocked.Increment(ref _sendErrors);
        }
    }

    private void NoteSpoof(SpoofKind kind, MacAddress offender)
    {
        if (kind == SpoofKind.None)
        {
            return;
        }
        Interlocked.Exchange(ref _offenders[(int)kind], (long)offender.Value);
        Interlocked.Increment(ref _spoofs[(int)kind]);
        if (Interlocked.Exchange(ref _spoofSignalled, 1) == 0)
        {
            Spoofed?.Invoke();
        }
    }

    /// <summary>
    /// Receives frames until stopped. An error or an unexpected exception is counted, logged at most
    /// once per 10 s, and followed by a back-off (10 ms, doubling to 1 s while errors follow each
    /// other): the loop never ends for it and never spins on it. ENETDOWN comes once per interface
    /// down; the kernel hooks the socket again when it is up, and the next receive gets frames.
    /// </summary>
    private async Task ReceiveLoopAsync(PacketSocket socket, string role, FrameHandler onFrame, CancellationToken cancellationToken)
    {
        var buffer = new byte[2048];
        var backoff = FirstBackoff;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                int n = await socket.ReceiveAsync(buffer, cancellationToken).ConfigureAwait(false);
                onFrame(buffer.AsSpan(0, n));
                backoff = FirstBackoff;
                continue;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (IOException e)
            {
                _log.PacketSocketError(role, e.Message, socket.Errors);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                _log.ReceiveLoopFault(role, e, Interlocked.Increment(ref _loopFaults));
            }

            try
            {
                await Task.Delay(backoff, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            backoff = backoff * 2 < LongestBackoff ? backoff * 2 : LongestBackoff;
        }
    }

    private delegate void FrameHandler(ReadOnlySpan<byte> frame);
}
