using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace L2Balance.Balancer.Protocol;

/// <summary>ARP opcode (RFC 826 "ar$op").</summary>
internal enum ArpOperation : ushort
{
    Request = 1,
    Reply = 2,
}

/// <summary>Why an ARP payload was not accepted as IPv4-over-Ethernet ARP.</summary>
internal enum ArpRejection
{
    /// <summary>Accepted.</summary>
    None = 0,

    /// <summary>Shorter than 28 bytes.</summary>
    Truncated,

    /// <summary>ar$hrd is not 1 (Ethernet).</summary>
    BadHardwareType,

    /// <summary>ar$pro is not 0x0800 (IPv4).</summary>
    BadProtocolType,

    /// <summary>ar$hln is not 6.</summary>
    BadHardwareLength,

    /// <summary>ar$pln is not 4.</summary>
    BadProtocolLength,

    /// <summary>ar$op is neither request nor reply (RARP and InARP are not ours).</summary>
    BadOperation,
}

/// <summary>
/// An ARP packet for IPv4 over Ethernet (RFC 826), as carried after an Ethernet II header
/// with type 0x0806:
/// <code>
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     hardware type = 1         |    protocol type = 0x0800     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  hlen = 6     |  plen = 4     |   operation (1 req, 2 reply)  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   sender hardware address (6) ... | sender protocol address (4)
/// |   target hardware address (6) ... | target protocol address (4)
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// </code>
/// </summary>
internal readonly record struct ArpPacket(
    ArpOperation Operation,
    MacAddress SenderMac,
    IPAddress SenderIp,
    MacAddress TargetMac,
    IPAddress TargetIp)
{
    /// <summary>Length of an IPv4-over-Ethernet ARP packet.</summary>
    public const int Length = 28;

    /// <summary>Ethernet header + ARP, before padding to the 60-byte minimum.</summary>
    public const int FrameLength = EthernetFrame.HeaderLength + Length;

    public const ushort HardwareTypeEthernet = 1;

    /// <summary>
    /// True for a who-has for <paramref name="ip"/> that deserves an answer. A request whose sender
    /// hardware address is a group address is not answered: the reply would be flooded to the
    /// segment. (The codec itself accepts group sender addresses: in multicast mode our own
    /// replies and gratuitous ARPs carry the multicast cluster MAC there, as NLB's do.)
    /// </summary>
    public bool IsRequestFor(IPAddress ip) => Operation == ArpOperation.Request && !SenderMac.IsMulticast && TargetIp.Equals(ip);

    /// <summary>Parses an ARP payload (the bytes after the Ethernet header).</summary>
    public static bool TryParse(ReadOnlySpan<byte> payload, out ArpPacket packet, out ArpRejection rejection)
    {
        packet = default;
        rejection = Check(payload);
        if (rejection != ArpRejection.None)
        {
            return false;
        }

        packet = new ArpPacket(
            (ArpOperation)BinaryPrimitives.ReadUInt16BigEndian(payload[6..]),
            MacAddress.Read(payload[8..]),
            new IPAddress(payload.Slice(14, 4)),
            MacAddress.Read(payload[18..]),
            new IPAddress(payload.Slice(24, 4)));
        return true;
    }

    private static ArpRejection Check(ReadOnlySpan<byte> p)
    {
        if (p.Length < Length)
        {
            return ArpRejection.Truncated;
        }

        if (BinaryPrimitives.ReadUInt16BigEndian(p) != HardwareTypeEthernet)
        {
            return ArpRejection.BadHardwareType;
        }

        if (BinaryPrimitives.ReadUInt16BigEndian(p[2..]) != EthernetFrame.EtherTypeIPv4)
        {
            return ArpRejection.BadProtocolType;
        }

        if (p[4] != MacAddress.Length)
        {
            return ArpRejection.BadHardwareLength;
        }

        if (p[5] != 4)
        {
            return ArpRejection.BadProtocolLength;
        }

        ushort op = BinaryPrimitives.ReadUInt16BigEndian(p[6..]);
        if (op is not ((ushort)ArpOperation.Request or (ushort)ArpOperation.Reply))
        {
            return ArpRejection.BadOperation;
        }

        return ArpRejection.None;
    }

    /// <summary>Writes the 28-byte packet; returns <see cref="Length"/>.</summary>
    public int Write(Span<byte> destination)
    {
        if (destination.Length < Length)
        {
            throw new ArgumentException("Destination too small for an ARP packet.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt16BigEndian(destination, HardwareTypeEthernet);
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], EthernetFrame.EtherTypeIPv4);
        destination[4] = MacAddress.Length;
        destination[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], (ushort)Operation);
        SenderMac.WriteTo(destination[8..]);
        WriteV4(SenderIp, destination.Slice(14, 4));
        TargetMac.WriteTo(destination[18..]);
        WriteV4(TargetIp, destination.Slice(24, 4));
        return Length;
    }

    /// <summary>
    /// The answer to a who-has for the VIP: "VIP is at the cluster MAC" (RFC 826 "Packet
    /// Reception": swap sender and target, put the answer in the sender fields, op = reply).
    /// </summary>
    public static ArpPacket Reply(ArpPacket request, MacAddress clusterMac)
    {
        if (request.Operation != ArpOperation.Request)
        {
            throw new ArgumentException("Only a request can be answered.", nameof(request));
        }

        return new ArpPacket(ArpOperation.Reply, clusterMac, request.TargetIp, request.SenderMac, request.SenderIp);
    }

    /// <summary>
    /// Gratuitous ARP announcing the VIP at the cluster MAC: sender IP = target IP = VIP,
    /// sender MAC = target MAC = cluster MAC, op = reply. The target MAC must equal the sender MAC:
    /// Linux (net/ipv4/arp.c arp_is_garp) treats only such a reply as gratuitous and then updates
    /// even a fresh neighbour entry, instead of waiting out locktime. Sent on start and whenever
    /// the cluster MAC changes: one such frame fixed stale neighbour entries in the lab
    /// (docs/design.md#gratuitous-arp-and-nud-probes).
    /// </summary>
    public static ArpPacket Gratuitous(MacAddress clusterMac, IPAddress vip)
    {
        RequireV4(vip, nameof(vip));
        return new ArpPacket(ArpOperation.Reply, clusterMac, vip, clusterMac, vip);
    }

    /// <summary>
    /// Writes a whole frame: Ethernet header from <paramref name="ownMac"/> to
    /// <paramref name="ethernetDestination"/>, this packet, zero padding to 60 bytes (veth does not pad).
    /// </summary>
    /// <remarks>
    /// The Ethernet source is always the node's own MAC, never the cluster MAC: in
    /// unicast-flood mode a single frame sourced from the cluster MAC makes the switch learn it
    /// on one port and all other nodes stop receiving (docs/design.md#switches).
    /// </remarks>
    public int WriteFrame(Span<byte> destination, MacAddress ethernetDestination, MacAddress ownMac)
    {
        if (ownMac.IsMulticast)
        {
            throw new ArgumentException("The node's own MAC must be a unicast address.", nameof(ownMac));
        }

        if (destination.Length < EthernetFrame.MinimumLength)
        {
            throw new ArgumentException("Destination too small for a 60-byte frame.", nameof(destination));
        }

        int n = EthernetFrame.Write(new EthernetHeader(ethernetDestination, ownMac, EthernetFrame.EtherTypeArp), destination);
        n += Write(destination[n..]);
        destination[n..EthernetFrame.MinimumLength].Clear();
        return EthernetFrame.MinimumLength;
    }

    /// <summary>Whole reply frame to a request, unicast back to the requester.</summary>
    public static int WriteReplyFrame(Span<byte> destination, ArpPacket request, MacAddress ownMac, MacAddress clusterMac)
    {
        RequireDistinct(ownMac, clusterMac);
        return Reply(request, clusterMac).WriteFrame(destination, request.SenderMac, ownMac);
    }

    /// <summary>Whole gratuitous-ARP frame, broadcast.</summary>
    public static int WriteGratuitousFrame(Span<byte> destination, MacAddress ownMac, MacAddress clusterMac, IPAddress vip)
    {
        RequireDistinct(ownMac, clusterMac);
        return Gratuitous(clusterMac, vip).WriteFrame(destination, MacAddress.Broadcast, ownMac);
    }

    private static void RequireDistinct(MacAddress ownMac, MacAddress clusterMac)
    {
        if (ownMac == clusterMac)
        {
            throw new ArgumentException("The Ethernet source must be the node's own MAC, not the cluster MAC.", nameof(ownMac));
        }
    }

    private static void WriteV4(IPAddress ip, Span<byte> destination)
    {
        RequireV4(ip, nameof(ip));
        ip.TryWriteBytes(destination, out _);
    }

    private static void RequireV4(IPAddress ip, string name)
    {
        ArgumentNullException.ThrowIfNull(ip, name);
        if (ip.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException("ARP here is IPv4 over Ethernet only.", name);
        }
    }
}
