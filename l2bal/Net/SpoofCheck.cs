using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Net;

/// <summary>What another host on the segment did to the VIP at layer 2 (docs/design.md#spoofing).</summary>
internal enum SpoofKind
{
    /// <summary>Nothing: an ordinary frame.</summary>
    None,

    /// <summary>
    /// An ARP packet (reply, gratuitous ARP or request) whose sender is the VIP at a MAC other than
    /// the cluster MAC: neighbours that take it send the VIP's traffic to that MAC.
    /// </summary>
    VipClaimed,

    /// <summary>
    /// A frame whose Ethernet source is the cluster MAC. No node ever sends one (the egress guard
    /// drops it), so another host did; in unicast-flood mode the switch learns the cluster MAC on
    /// that host's port and stops flooding the VIP's traffic to the nodes.
    /// </summary>
    ClusterMacSource,
}

/// <summary>
/// Tells spoofing from ordinary frames: a pure function of a received frame, the VIP and the
/// cluster MAC, with no allocation (it runs for every ARP frame on the segment). Frames this node
/// sent never reach it (PACKET_IGNORE_OUTGOING), and peers' replies carry their own MAC as
/// Ethernet source and the cluster MAC as ARP sender, so neither is ever classified as spoofing.
/// </summary>
internal readonly struct SpoofCheck
{
    private readonly uint _vip;
    private readonly bool _hasVip;
    private readonly MacAddress _clusterMac;

    /// <param name="vip">The VIP (IPv4); null with an IPv6 VIP alone: no ARP names it, only the cluster-MAC source is checked.</param>
    /// <param name="clusterMac">The MAC the VIP resolves to.</param>
    public SpoofCheck(IPAddress? vip, MacAddress clusterMac)
    {
        if (vip is not null)
        {
            if (vip.AddressFamily != AddressFamily.InterNetwork)
            {
                throw new ArgumentException($"The VIP must be IPv4: {vip}.", nameof(vip));
            }
            Span<byte> bytes = stackalloc byte[4];
            vip.TryWriteBytes(bytes, out _);
            _vip = BinaryPrimitives.ReadUInt32BigEndian(bytes);
            _hasVip = true;
        }
        _clusterMac = clusterMac;
    }

    /// <summary>What <paramref name="frame"/> (a whole Ethernet frame) does to the VIP; <paramref name="offender"/> is the MAC it names.</summary>
    public SpoofKind Classify(ReadOnlySpan<byte> frame, out MacAddress offender)
    {
        offender = default;
        if (frame.Length < EthernetFrame.HeaderLength)
        {
            return SpoofKind.None;
        }
        var source = MacAddress.Read(frame[MacAddress.Length..]);
        if (source == _clusterMac)
        {
            offender = source;
            return SpoofKind.ClusterMacSource;
        }
        var arp = frame[EthernetFrame.HeaderLength..];
        // IPv4-over-Ethernet ARP of any operation (RFC 826 layout in ArpPacket), read in place.
        if (!_hasVip || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != EthernetFrame.EtherTypeArp || arp.Length < ArpPacket.Length
            || BinaryPrimitives.ReadUInt16BigEndian(arp) != ArpPacket.HardwareTypeEthernet
            || BinaryPrimitives.ReadUInt16BigEndian(arp[2..]) != EthernetFrame.EtherTypeIPv4 || arp[4] != MacAddress.Length || arp[5] != 4)
        {
            return SpoofKind.None;
        }
        var senderMac = MacAddress.Read(arp[8..]);
        if (BinaryPrimitives.ReadUInt32BigEndian(arp[14..]) != _vip || senderMac == _clusterMac)
        {
            return SpoofKind.None;
        }
        offender = senderMac;
        return SpoofKind.VipClaimed;
    }
}
