using System.Net;
using System.Net.Sockets;
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
/// </remarks>
internal sealed class ArpResponder : IAsyncDisposable
{
    private readonly PacketSocket _socket;
    private readonly IPAddress _vip;
    private readonly MacAddress _clusterMac;
    private readonly CancellationTokenSource _stop = new();
    private readonly long[] _ignored = new long[Enum.GetValues<ArpIgnoreReason>().Length];
    private Task _loop = Task.CompletedTask;
    private int _disposed;
    private volatile bool _enabled;
    private long _requestsSeen;
    private long _repliesSent;
    private long _sendErrors;

    private ArpResponder(PacketSocket socket, IPAddress vip, MacAddress clusterMac)
    {
        _socket = socket;
        _vip = vip;
        _clusterMac = clusterMac;
    }

    /// <summary>
    /// Opens the ARP socket on <paramref name="interfaceName"/> (in the calling thread's network
    /// namespace) and adds <paramref name="clusterMac"/> to the interface's receive filter for the
    /// socket's lifetime, so NUD probes unicast to it arrive on real NICs too. Starts disabled.
    /// </summary>
    public static ArpResponder Open(string interfaceName, IPAddress vip, MacAddress clusterMac)
    {
        ArgumentNullException.ThrowIfNull(vip);
        if (vip.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException($"The VIP must be IPv4 for ARP: {vip}.", nameof(vip));
        }

        var socket = PacketSocket.Open(interfaceName, EthernetFrame.EtherTypeArp);
        try
        {
            if (socket.InterfaceMac == clusterMac)
            {
                throw new ArgumentException("The cluster MAC must differ from the interface's own MAC.", nameof(clusterMac));
            }

            socket.AddMembership(clusterMac);
            return new ArpResponder(socket, vip, clusterMac);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The node's own MAC (Ethernet source of every frame sent).</summary>
    public MacAddress OwnMac => _socket.InterfaceMac;

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

    /// <summary>The receive loop; faults only if the socket fails in an unexpected way.</summary>
    public Task Completion => _loop;

    /// <summary>Frames ignored for <paramref name="reason"/>.</summary>
    public long Ignored(ArpIgnoreReason reason) => Interlocked.Read(ref _ignored[(int)reason]);

    /// <summary>Starts the receive loop (once).</summary>
    public void Start()
    {
        if (!_loop.IsCompleted || _stop.IsCancellationRequested)
        {
            throw new InvalidOperationException("The responder is already running or stopped.");
        }

        _loop = Task.Run(() => RunAsync(_stop.Token));
    }

    /// <summary>
    /// Broadcasts a gratuitous ARP "VIP is at the cluster MAC": refreshes existing neighbour
    /// entries on the segment (it does not create missing ones with arp_accept=0).
    /// </summary>
    public void SendGratuitous()
    {
        Span<byte> frame = stackalloc byte[EthernetFrame.MinimumLength];
        int n = ArpPacket.WriteGratuitousFrame(frame, OwnMac, _clusterMac, _vip);
        try
        {
            _socket.Send(frame[..n]);
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
        if (!request.IsRequestFor(_vip))
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
            await _loop.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Stopping: a loop fault was already observable through Completion.
        }
        finally
        {
            _socket.Dispose();
            _stop.Dispose();
        }
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        var buffer = new byte[2048];
        var reply = new byte[EthernetFrame.MinimumLength];
        while (!cancellationToken.IsCancellationRequested)
        {
            int n;
            try
            {
                n = await _socket.ReceiveAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }

            var reason = Classify(buffer.AsSpan(0, n), out var request);
            if (reason is { } ignored)
            {
                Interlocked.Increment(ref _ignored[(int)ignored]);
                continue;
            }

            int length = ArpPacket.WriteReplyFrame(reply, request, OwnMac, _clusterMac);
            try
            {
                _socket.Send(reply.AsSpan(0, length));
                Interlocked.Increment(ref _repliesSent);
            }
            catch (IOException)
            {
                // ENOBUFS and the like: the requester retries; counted for metrics.
                Interlocked.Increment(ref _sendErrors);
            }
        }
    }
}
