using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace L2Balance.Balancer.Protocol;

/// <summary>Why an IPv6 packet was not accepted as a valid neighbour solicitation or advertisement (a counted drop).</summary>
internal enum NeighborRejection
{
    /// <summary>Accepted.</summary>
    None = 0,

    /// <summary>Shorter than the IPv6 header, or than its payload length says.</summary>
    Truncated,

    /// <summary>The version field is not 6.</summary>
    NotIPv6,

    /// <summary>The next header is not ICMPv6 (extension headers are not followed: ND never carries them).</summary>
    NotIcmpv6,

    /// <summary>An ICMPv6 type other than 135 and 136.</summary>
    NotNeighborMessage,

    /// <summary>Hop limit not 255: the packet crossed a router (RFC 4861 section 7.1.1).</summary>
    BadHopLimit,

    /// <summary>The ICMPv6 code is not 0.</summary>
    BadCode,

    /// <summary>The ICMPv6 message is shorter than 24 bytes.</summary>
    BadLength,

    /// <summary>The checksum over the pseudo-header and the message is wrong.</summary>
    BadChecksum,

    /// <summary>An option with length 0, or one that runs past the message.</summary>
    BadOption,

    /// <summary>The target is a multicast address.</summary>
    MulticastTarget,

    /// <summary>A solicitation from the unspecified address (DAD) not sent to a solicited-node group, or carrying a source link-layer option.</summary>
    BadDadSolicitation,

    /// <summary>An advertisement to a multicast address with the solicited flag set.</summary>
    SolicitedToMulticast,
}

/// <summary>ICMPv6 neighbour discovery message type (RFC 4861 section 4.3, 4.4).</summary>
internal enum NeighborMessageType : byte
{
    Solicitation = 135,
    Advertisement = 136,
}

/// <summary>
/// A neighbour solicitation or advertisement (RFC 4861 section 4.3, 4.4) with the IPv6 header fields
/// the responder needs; <see cref="LinkLayer"/> is the source (NS) or target (NA) link-layer address
/// option, null when absent.
/// <code>
/// IPv6 header (40) | type | code | checksum | R S O reserved (NA) or reserved (NS) | target (16) | options (8 each)
/// </code>
/// </summary>
internal readonly record struct NeighborPacket(
    NeighborMessageType Type,
    IPAddress Source,
    IPAddress Destination,
    IPAddress Target,
    MacAddress? LinkLayer,
    bool Solicited,
    bool Override)
{
    public const int IPv6HeaderLength = 40;
    public const byte NextHeaderIcmpv6 = 58;
    public const ushort EtherTypeIPv6 = 0x86DD;

    /// <summary>ICMPv6 type, code, checksum, flags/reserved, target.</summary>
    public const int MessageLength = 24;

    /// <summary>A link-layer address option for Ethernet: type, length 1 (8 bytes), MAC.</summary>
    public const int OptionLength = 8;

    /// <summary>An advertisement with its target link-layer address option, as l2bal sends it, in an Ethernet frame (86 bytes).</summary>
    public const int AdvertisementFrameLength = EthernetFrame.HeaderLength + IPv6HeaderLength + MessageLength + OptionLength;

    private const byte OptionSourceLinkLayer = 1;
    private const byte OptionTargetLinkLayer = 2;

    /// <summary>ff02::1, all nodes: the destination of unsolicited advertisements.</summary>
    public static IPAddress AllNodes { get; } = IPAddress.Parse("ff02::1");

    /// <summary>True for a solicitation for <paramref name="vip"/> that deserves an answer (as <see cref="ArpPacket.IsRequestFor"/>).</summary>
    public bool IsSolicitationFor(IPAddress vip) => Type == NeighborMessageType.Solicitation && Target.Equals(vip);

    /// <summary>Parses an IPv6 packet (the bytes after the Ethernet header) and validates it as RFC 4861 section 7.1 asks.</summary>
    public static bool TryParse(ReadOnlySpan<byte> packet, out NeighborPacket message, out NeighborRejection rejection)
    {
        message = default;
        rejection = Check(packet, out var icmp);
        if (rejection != NeighborRejection.None)
        {
            return false;
        }

        var type = (NeighborMessageType)icmp[0];
        var source = new IPAddress(packet.Slice(8, 16));
        var destination = new IPAddress(packet.Slice(24, 16));
        var target = new IPAddress(icmp.Slice(8, 16));
        MacAddress? linkLayer = null;
        var wanted = type == NeighborMessageType.Solicitation ? OptionSourceLinkLayer : OptionTargetLinkLayer;
        for (var options = icmp[MessageLength..]; options.Length > 0; options = options[(options[1] * 8)..])
        {
            if (options[0] == wanted && options[1] == 1)
            {
                linkLayer = MacAddress.Read(options[2..]);
            }
        }

        bool solicited = type == NeighborMessageType.Advertisement && (icmp[4] & 0x40) != 0;
        bool overrides = type == NeighborMessageType.Advertisement && (icmp[4] & 0x20) != 0;
        if (target.IsIPv6Multicast)
        {
            rejection = NeighborRejection.MulticastTarget;
            return false;
        }
        if (type == NeighborMessageType.Solicitation && source.Equals(IPAddress.IPv6Any)
            && (linkLayer is not null || !IsSolicitedNodeGroup(packet.Slice(24, 16))))
        {
            rejection = NeighborRejection.BadDadSolicitation;
            return false;
        }
        if (type == NeighborMessageType.Advertisement && solicited && destination.IsIPv6Multicast)
        {
            rejection = NeighborRejection.SolicitedToMulticast;
            return false;
        }

        message = new NeighborPacket(type, source, destination, target, linkLayer, solicited, overrides);
        return true;
    }

    private static NeighborRejection Check(ReadOnlySpan<byte> p, out ReadOnlySpan<byte> icmp)
    {
        icmp = default;
        if (p.Length < IPv6HeaderLength)
        {
            return NeighborRejection.Truncated;
        }
        if (p[0] >> 4 != 6)
        {
            return NeighborRejection.NotIPv6;
        }
        int payload = BinaryPrimitives.ReadUInt16BigEndian(p[4..]);
        if (p.Length < IPv6HeaderLength + payload)
        {
            return NeighborRejection.Truncated;
        }
        if (p[6] != NextHeaderIcmpv6)
        {
            return NeighborRejection.NotIcmpv6;
        }
        // Trailing Ethernet padding is not part of the packet.
        icmp = p.Slice(IPv6HeaderLength, payload);
        if (icmp.Length < 1 || icmp[0] is not ((byte)NeighborMessageType.Solicitation or (byte)NeighborMessageType.Advertisement))
        {
            return NeighborRejection.NotNeighborMessage;
        }
        if (p[7] != 255)
        {
            return NeighborRejection.BadHopLimit;
        }
        if (icmp.Length < MessageLength)
        {
            return NeighborRejection.BadLength;
        }
        if (icmp[1] != 0)
        {
            return NeighborRejection.BadCode;
        }
        if (Checksum(p.Slice(8, 16), p.Slice(24, 16), icmp) != 0)
        {
            return NeighborRejection.BadChecksum;
        }
        for (var options = icmp[MessageLength..]; options.Length > 0;)
        {
            if (options.Length < 2 || options[1] == 0 || options[1] * 8 > options.Length)
            {
                return NeighborRejection.BadOption;
            }
            options = options[(options[1] * 8)..];
        }
        return NeighborRejection.None;
    }

    /// <summary>
    /// The ICMPv6 checksum (RFC 4443 section 2.3) over the pseudo-header (RFC 8200 section 8.1: source,
    /// destination, upper-layer length, next header 58) and <paramref name="icmp"/>: 0 when a received
    /// message's checksum field is right, the value to store when that field is zero.
    /// </summary>
    public static ushort Checksum(ReadOnlySpan<byte> source16, ReadOnlySpan<byte> destination16, ReadOnlySpan<byte> icmp) =>
        L2Balance.Common.Net.InternetChecksum.Compute(source16, destination16, NextHeaderIcmpv6, icmp);

    /// <summary>The solicited-node multicast group of <paramref name="address"/>: ff02::1:ff followed by its low 24 bits (RFC 4291 section 2.7.1).</summary>
    public static IPAddress SolicitedNodeGroup(IPAddress address)
    {
        RequireV6(address, nameof(address));
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        Span<byte> group = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, bytes[13], bytes[14], bytes[15]];
        return new IPAddress(group);
    }

    /// <summary>The Ethernet group a multicast IPv6 address maps to: 33:33 and its low 32 bits (RFC 2464 section 7).</summary>
    public static MacAddress MulticastMac(IPAddress group)
    {
        RequireV6(group, nameof(group));
        if (!group.IsIPv6Multicast)
        {
            throw new ArgumentException($"Not a multicast address: {group}.", nameof(group));
        }
        Span<byte> bytes = stackalloc byte[16];
        group.TryWriteBytes(bytes, out _);
        return new MacAddress(0x3333_0000_0000UL | BinaryPrimitives.ReadUInt32BigEndian(bytes[12..]));
    }

    /// <summary>
    /// Writes the advertisement answering <paramref name="solicitation"/> for <paramref name="vip"/>:
    /// target and IPv6 source the VIP, target link-layer address the cluster MAC, override set, and
    /// solicited set unless the asker was doing DAD (unspecified source: then to all nodes, RFC 4861
    /// section 7.2.4). Ethernet source is the node's own MAC, never the cluster MAC (as for ARP);
    /// Ethernet destination the asker's source link-layer option, else its frame's source.
    /// </summary>
    public static int WriteAnswerFrame(Span<byte> destination, NeighborPacket solicitation, MacAddress askerFrameSource, MacAddress ownMac, MacAddress clusterMac, IPAddress vip)
    {
        if (solicitation.Type != NeighborMessageType.Solicitation)
        {
            throw new ArgumentException("Only a solicitation is answered.", nameof(solicitation));
        }
        bool dad = solicitation.Source.Equals(IPAddress.IPv6Any);
        var to = dad ? AllNodes : solicitation.Source;
        var toMac = dad ? MulticastMac(AllNodes) : solicitation.LinkLayer ?? askerFrameSource;
        return WriteAdvertisementFrame(destination, toMac, ownMac, clusterMac, vip, to, solicited: !dad);
    }

    /// <summary>Writes an unsolicited advertisement of <paramref name="vip"/> at the cluster MAC to all nodes (the IPv6 gratuitous ARP, RFC 4861 section 7.2.6).</summary>
    public static int WriteUnsolicitedFrame(Span<byte> destination, MacAddress ownMac, MacAddress clusterMac, IPAddress vip) =>
        WriteAdvertisementFrame(destination, MulticastMac(AllNodes), ownMac, clusterMac, vip, AllNodes, solicited: false);

    private static int WriteAdvertisementFrame(Span<byte> frame, MacAddress ethernetDestination, MacAddress ownMac, MacAddress clusterMac, IPAddress vip, IPAddress to, bool solicited)
    {
        RequireV6(vip, nameof(vip));
        RequireV6(to, nameof(to));
        if (ownMac == clusterMac)
        {
            throw new ArgumentException("The cluster MAC must differ from the node's own MAC.", nameof(clusterMac));
        }
        if (frame.Length < AdvertisementFrameLength)
        {
            throw new ArgumentException($"Need {AdvertisementFrameLength} bytes.", nameof(frame));
        }

        frame = frame[..AdvertisementFrameLength];
        frame.Clear();
        EthernetFrame.Write(new EthernetHeader(ethernetDestination, ownMac, EtherTypeIPv6), frame);
        var ip = frame[EthernetFrame.HeaderLength..];
        ip[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], MessageLength + OptionLength);
        ip[6] = NextHeaderIcmpv6;
        ip[7] = 255;
        vip.TryWriteBytes(ip[8..], out _);
        to.TryWriteBytes(ip[24..], out _);
        var icmp = ip[IPv6HeaderLength..];
        icmp[0] = (byte)NeighborMessageType.Advertisement;
        icmp[4] = (byte)((solicited ? 0x40 : 0) | 0x20);
        vip.TryWriteBytes(icmp[8..], out _);
        icmp[MessageLength] = OptionTargetLinkLayer;
        icmp[MessageLength + 1] = 1;
        clusterMac.WriteTo(icmp[(MessageLength + 2)..]);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum(ip.Slice(8, 16), ip.Slice(24, 16), icmp));
        return AdvertisementFrameLength;
    }

    private static bool IsSolicitedNodeGroup(ReadOnlySpan<byte> address16) =>
        address16[..13].SequenceEqual((ReadOnlySpan<byte>)[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff]);

    private static void RequireV6(IPAddress address, string name)
    {
        ArgumentNullException.ThrowIfNull(address, name);
        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            throw new ArgumentException($"Not an IPv6 address: {address}.", name);
        }
    }
}
