using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Net;

/// <summary>
/// Neighbour discovery for the IPv6 VIP, the IPv6 twin of ARP (docs/design.md#ndp): solicitations
/// for it are answered with the cluster MAC, unsolicited advertisements go with every gratuitous ARP,
/// and an advertisement or solicitation naming the VIP at another MAC is a <see cref="SpoofKind.VipClaimed"/>.
/// </summary>
internal sealed partial class ArpResponder
{
    private readonly PacketSocket? _nd;
    private readonly IPAddress? _vip6;
    private readonly ArpAnswerLimiter _ndLimiter = new();
    private readonly long[] _ndIgnored = new long[Enum.GetValues<ArpIgnoreReason>().Length];
    private readonly long[] _ndRejected = new long[Enum.GetValues<NeighborRejection>().Length];
    private Task _ndLoop = Task.CompletedTask;
    private long _ndSolicitations;
    private long _ndAnswers;
    private long _ndAnnouncements;
    private long _ndClaims;

    /// <summary>Neighbour solicitations for the IPv6 VIP seen (answered or not), the twin of <see cref="RequestsSeen"/>.</summary>
    public long NeighborSolicitations => Interlocked.Read(ref _ndSolicitations);

    /// <summary>Advertisements for the IPv6 VIP, or solicitations from it, naming another MAC: ND's share of <see cref="SpoofKind.VipClaimed"/>.</summary>
    public long NeighborClaims => Interlocked.Read(ref _ndClaims);

    /// <summary>Errors the ND socket returned instead of a frame (0 without an IPv6 VIP).</summary>
    public long NeighborSocketErrors => _nd?.Errors ?? 0;

    /// <summary>Neighbour advertisements sent in answer to solicitations for the IPv6 VIP.</summary>
    public long NeighborAnswers => Interlocked.Read(ref _ndAnswers);

    /// <summary>Unsolicited neighbour advertisements sent.</summary>
    public long NeighborAnnouncements => Interlocked.Read(ref _ndAnnouncements);

    /// <summary>ND frames not answered for <paramref name="reason"/> (<see cref="ArpIgnoreReason.BadArp"/>: see <see cref="NeighborRejected"/>).</summary>
    public long NeighborIgnored(ArpIgnoreReason reason) => Interlocked.Read(ref _ndIgnored[(int)reason]);

    /// <summary>Malformed ND packets dropped for <paramref name="rejection"/>.</summary>
    public long NeighborRejected(NeighborRejection rejection) => Interlocked.Read(ref _ndRejected[(int)rejection]);

    /// <summary>
    /// The ND socket: it receives solicitations sent to the VIP's solicited-node group, so that
    /// group's MAC joins the interface's receive filter (real NICs drop other groups), and the
    /// cluster MAC too, for NUD probes unicast to it when there is no IPv4 VIP's ARP socket to add it.
    /// </summary>
    private static PacketSocket OpenNeighborSocket(string interfaceName, IPAddress vip6, MacAddress clusterMac)
    {
        if (vip6.AddressFamily != AddressFamily.InterNetworkV6)
        {
            throw new ArgumentException($"The second VIP must be IPv6 for neighbour discovery: {vip6}.", nameof(vip6));
        }
        var nd = PacketSocket.OpenNeighborDiscovery(interfaceName);
        try
        {
            nd.AddMembership(NeighborPacket.MulticastMac(NeighborPacket.SolicitedNodeGroup(vip6)));
            nd.AddMembership(clusterMac);
            return nd;
        }
        catch
        {
            nd.Dispose();
            throw;
        }
    }

    /// <summary>Sends an unsolicited advertisement of the IPv6 VIP at the cluster MAC to all nodes, when there is one.</summary>
    private void SendUnsolicitedAdvertisement()
    {
        if (_nd is not { } nd || _vip6 is not { } vip6)
        {
            return;
        }
        Span<byte> frame = stackalloc byte[NeighborPacket.AdvertisementFrameLength];
        int n = NeighborPacket.WriteUnsolicitedFrame(frame, OwnMac, _clusterMac, vip6);
        nd.Send(frame[..n]);
        Interlocked.Increment(ref _ndAnnouncements);
    }

    /// <summary>Decides what to do with one ND frame; returns the reason it is not answered, or null to answer.</summary>
    internal ArpIgnoreReason? ClassifyNeighbor(ReadOnlySpan<byte> frame, out NeighborPacket solicitation, out MacAddress askerSource)
    {
        solicitation = default;
        askerSource = default;
        if (!EthernetFrame.TryParse(frame, out var ethernet, out _) || ethernet.EtherType != NeighborPacket.EtherTypeIPv6)
        {
            return ArpIgnoreReason.BadEthernet;
        }
        askerSource = ethernet.Source;
        if (!ethernet.Destination.IsMulticast && ethernet.Destination != OwnMac && ethernet.Destination != _clusterMac)
        {
            return ArpIgnoreReason.NotAddressedToUs;
        }
        if (!NeighborPacket.TryParse(frame[EthernetFrame.HeaderLength..], out solicitation, out var rejection))
        {
            Interlocked.Increment(ref _ndRejected[(int)rejection]);
            return ArpIgnoreReason.BadArp;
        }
        if (solicitation.Type != NeighborMessageType.Solicitation)
        {
            return ArpIgnoreReason.NotRequest;
        }
        if (!solicitation.IsSolicitationFor(_vip6!))
        {
            return ArpIgnoreReason.NotForVip;
        }
        Interlocked.Increment(ref _ndSolicitations);
        if ((solicitation.LinkLayer ?? askerSource).IsMulticast)
        {
            return ArpIgnoreReason.GroupSender;
        }
        return _enabled ? null : ArpIgnoreReason.Disabled;
    }

    /// <summary>
    /// What an ND packet does to the IPv6 VIP: an advertisement for it, or a solicitation from it,
    /// whose link-layer option names a MAC other than the cluster MAC claims it (peers' answers name the cluster MAC).
    /// </summary>
    internal static SpoofKind ClassifyNeighborSpoof(in NeighborPacket packet, IPAddress vip6, MacAddress clusterMac, out MacAddress offender)
    {
        offender = default;
        var claimed = packet.Type == NeighborMessageType.Advertisement ? packet.Target : packet.Source;
        if (!claimed.Equals(vip6) || packet.LinkLayer is not { } mac || mac == clusterMac)
        {
            return SpoofKind.None;
        }
        offender = mac;
        return SpoofKind.VipClaimed;
    }

    /// <summary>One frame of the ND socket: a spoof is noted, a solicitation for the IPv6 VIP answered within the ND budgets.</summary>
    private void OnNeighborFrame(ReadOnlySpan<byte> frame, byte[] answer)
    {
        var reason = ClassifyNeighbor(frame, out var packet, out var askerSource);
        if (reason is ArpIgnoreReason.NotRequest or ArpIgnoreReason.NotForVip or null)
        {
            var spoof = ClassifyNeighborSpoof(packet, _vip6!, _clusterMac, out var offender);
            if (spoof != SpoofKind.None)
            {
                Interlocked.Increment(ref _ndClaims);
            }
            NoteSpoof(spoof, offender);
        }
        if (reason is null)
        {
            reason = _ndLimiter.Check(packet.LinkLayer ?? askerSource, _clock.Elapsed) switch
            {
                ArpLimit.Requester => ArpIgnoreReason.RequesterLimit,
                ArpLimit.Total => ArpIgnoreReason.TotalLimit,
                _ => null,
            };
        }
        if (reason is { } ignored)
        {
            Interlocked.Increment(ref _ndIgnored[(int)ignored]);
            return;
        }

        int length = NeighborPacket.WriteAnswerFrame(answer, packet, askerSource, OwnMac, _clusterMac, _vip6!);
        try
        {
            _nd!.Send(answer.AsSpan(0, length));
            Interlocked.Increment(ref _ndAnswers);
        }
        catch (IOException)
        {
            // As for ARP replies: the asker retries; counted.
            Interlocked.Increment(ref _sendErrors);
        }
    }
}
