using System.Buffers.Binary;
using L2Balance.Balancer.Net;
using static L2Balance.Balancer.Interop.Netlink;

namespace L2Balance.Balancer.Health;

/// <summary>What one logged packet was.</summary>
internal enum NflogPacketVerdict
{
    /// <summary>An ICMP port-unreachable from the VIP quoting a UDP datagram to the VIP: the port is the dead service's.</summary>
    PortUnreachable,

    /// <summary>Anything else: shorter than its headers, another protocol, type or address (a counted drop).</summary>
    Malformed,
}

/// <summary>
/// Pure codec of the nfnetlink_log messages of the port-unreachable wake (docs/design.md#health;
/// include/uapi/linux/netfilter/nfnetlink_log.h). Integers in host order except nfgenmsg.res_id,
/// the config mode and thresholds and everything inside the packet (network order):
/// <code>
/// bind: nlmsghdr | type = ULOG &lt;&lt; 8 | CONFIG, flags = REQUEST|ACK | nfgenmsg: u8 family = 0 | u8 version = 0 | be16 group |
///       nlattr CFG_CMD: u8 BIND | nlattr CFG_MODE: be32 copy range | u8 COPY_PACKET | u8 pad | nlattr CFG_QTHRESH: be32 1 |
/// packet: nlmsghdr | type = ULOG &lt;&lt; 8 | PACKET | nfgenmsg | nlattrs …, NFULA_PAYLOAD: the packet from its IP header:
///       IPv4 (proto ICMP, saddr VIP) | ICMP type 3 code 3 | 4 unused | quoted IPv4 (proto UDP, daddr VIP) | be16 sport | be16 dport
/// </code>
/// </summary>
internal static class NflogCodec
{
    /// <summary>Length of the bind request.</summary>
    public const int BindLength = NLMSG_HDRLEN + SizeOfNfgenmsg + 8 + 12 + 8;

    /// <summary>IPv4 (20) + ICMP (8) + quoted IPv4 (20) + the quoted UDP ports (4), rounded up: what the log rule copies.</summary>
    public const int SnapLength = 64;

    /// <summary>nlmsg_type of a logged packet and of the config request.</summary>
    public const ushort PacketType = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;

    public const ushort ConfigType = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;

    /// <summary>
    /// Writes the request that binds this socket to log <paramref name="group"/>, copying packets up
    /// to <see cref="SnapLength"/> bytes, each sent at once (queue threshold 1).
    /// </summary>
    public static int WriteBind(Span<byte> destination, ushort group, uint sequence)
    {
        var m = destination[..BindLength];
        m.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(m, BindLength);
        BinaryPrimitives.WriteUInt16LittleEndian(m[4..], ConfigType);
        BinaryPrimitives.WriteUInt16LittleEndian(m[6..], NLM_F_REQUEST | NLM_F_ACK);
        BinaryPrimitives.WriteUInt32LittleEndian(m[8..], sequence);
        // nfgenmsg: family AF_UNSPEC, version 0, res_id the group.
        BinaryPrimitives.WriteUInt16BigEndian(m[(NLMSG_HDRLEN + 2)..], group);
        var a = m[(NLMSG_HDRLEN + SizeOfNfgenmsg)..];
        Attribute(a, NFULA_CFG_CMD, 1)[0] = NFULNL_CFG_CMD_BIND;
        var mode = Attribute(a[8..], NFULA_CFG_MODE, 6);
        BinaryPrimitives.WriteUInt32BigEndian(mode, SnapLength);
        mode[4] = NFULNL_COPY_PACKET;
        BinaryPrimitives.WriteUInt32BigEndian(Attribute(a[20..], NFULA_CFG_QTHRESH, 4), 1);
        return BindLength;
    }

    /// <summary>
    /// Reads one received datagram: calls <paramref name="packet"/> with the verdict and port of each
    /// logged packet. Other messages (an ack, NLMSG_NOOP) are skipped; a message whose length does
    /// not fit ends the datagram as one malformed packet. <paramref name="vip"/>: the VIP's 4 bytes.
    /// </summary>
    public static void Read(ReadOnlySpan<byte> datagram, ReadOnlySpan<byte> vip, Action<NflogPacketVerdict, int> packet)
    {
        ArgumentNullException.ThrowIfNull(packet);
        while (!datagram.IsEmpty)
        {
            var length = datagram.Length < NLMSG_HDRLEN ? 0 : BinaryPrimitives.ReadUInt32LittleEndian(datagram);
            if (length < NLMSG_HDRLEN || length > datagram.Length)
            {
                packet(NflogPacketVerdict.Malformed, 0);
                return;
            }
            if (BinaryPrimitives.ReadUInt16LittleEndian(datagram[4..]) == PacketType)
            {
                var verdict = ReadPacketMessage(datagram[NLMSG_HDRLEN..(int)length], vip, out var port);
                packet(verdict, port);
            }
            datagram = datagram[Math.Min(datagram.Length, RtNetlinkCodec.Align((int)length))..];
        }
    }

    /// <summary>The body of one NFULNL_MSG_PACKET (after nlmsghdr): its NFULA_PAYLOAD judged by <see cref="ReadPayload"/>.</summary>
    internal static NflogPacketVerdict ReadPacketMessage(ReadOnlySpan<byte> body, ReadOnlySpan<byte> vip, out int port)
    {
        port = 0;
        if (body.Length < SizeOfNfgenmsg)
        {
            return NflogPacketVerdict.Malformed;
        }
        var attributes = body[SizeOfNfgenmsg..];
        while (attributes.Length >= RTA_HDRLEN)
        {
            int length = BinaryPrimitives.ReadUInt16LittleEndian(attributes);
            if (length < RTA_HDRLEN || length > attributes.Length)
            {
                return NflogPacketVerdict.Malformed;
            }
            if ((BinaryPrimitives.ReadUInt16LittleEndian(attributes[2..]) & NLA_TYPE_MASK) == NFULA_PAYLOAD)
            {
                return ReadPayload(attributes[RTA_HDRLEN..length], vip, out port);
            }
            attributes = attributes[Math.Min(attributes.Length, RtNetlinkCodec.Align(length))..];
        }
        return NflogPacketVerdict.Malformed;
    }

    /// <summary>
    /// The logged packet from its IPv4 header: a port-unreachable is ICMP type 3 code 3 from the VIP
    /// quoting a UDP datagram to the VIP; its quoted destination port is the dead service's.
    /// </summary>
    internal static NflogPacketVerdict ReadPayload(ReadOnlySpan<byte> ip, ReadOnlySpan<byte> vip, out int port)
    {
        port = 0;
        if (!TryIpv4(ip, IPPROTO_ICMP, out var ihl) || !ip[12..16].SequenceEqual(vip))
        {
            return NflogPacketVerdict.Malformed;
        }
        var icmp = ip[ihl..];
        if (icmp.Length < 8 || icmp[0] != 3 || icmp[1] != 3)
        {
            return NflogPacketVerdict.Malformed;
        }
        var quoted = icmp[8..];
        if (!TryIpv4(quoted, IPPROTO_UDP, out var quotedIhl) || !quoted[16..20].SequenceEqual(vip) || quoted.Length < quotedIhl + 4)
        {
            return NflogPacketVerdict.Malformed;
        }
        port = BinaryPrimitives.ReadUInt16BigEndian(quoted[(quotedIhl + 2)..]);
        return port == 0 ? NflogPacketVerdict.Malformed : NflogPacketVerdict.PortUnreachable;
    }

    private static bool TryIpv4(ReadOnlySpan<byte> ip, byte protocol, out int ihl)
    {
        ihl = ip.IsEmpty ? 0 : (ip[0] & 0xf) * 4;
        return ip.Length >= 20 && ip[0] >> 4 == 4 && ihl >= 20 && ip.Length >= ihl && ip[9] == protocol;
    }

    /// <summary>Writes an nlattr header of <paramref name="type"/> and returns its <paramref name="length"/>-byte value.</summary>
    private static Span<byte> Attribute(Span<byte> destination, ushort type, int length)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(destination, (ushort)(RTA_HDRLEN + length));
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], type);
        return destination.Slice(RTA_HDRLEN, length);
    }
}
