using System.Buffers.Binary;
using System.Net.Sockets;
using L2Balance.Balancer.Kernel;
using static L2Balance.Balancer.Interop.Netlink;

namespace L2Balance.Balancer.Net;

/// <summary>
/// Pure codec for the ctnetlink request that deletes a conntrack entry (linux/netfilter/nfnetlink_conntrack.h;
/// net/netfilter/nf_conntrack_netlink.c `ctnetlink_del_conntrack`: IPCTNL_MSG_CT_DELETE finds the entry by the
/// tuple given, which may be either direction's, since the hash holds both, and deletes it, or answers ENOENT).
/// Headers in host order (little-endian here), attribute payloads in network order, every part 4-byte aligned:
/// <code>
/// nlmsghdr (16)         | u32 len | u16 type = NFNL_SUBSYS_CTNETLINK &lt;&lt; 8 | IPCTNL_MSG_CT_DELETE | u16 NLM_F_REQUEST | NLM_F_ACK | u32 seq | u32 pid 0 |
/// nfgenmsg (4)          | u8 family | u8 NFNETLINK_V0 | be16 res_id 0 |
/// CTA_TUPLE_ORIG        | nested: CTA_TUPLE_IP { CTA_IP_V4_SRC, CTA_IP_V4_DST (or _V6_) }, CTA_TUPLE_PROTO { CTA_PROTO_NUM u8, CTA_PROTO_SRC_PORT be16, CTA_PROTO_DST_PORT be16 } |
/// </code>
/// </summary>
internal static class CtNetlinkCodec
{
    /// <summary>nfnetlink.h: the conntrack subsystem (high byte of nlmsg_type).</summary>
    public const int NFNL_SUBSYS_CTNETLINK = 1;

    /// <summary>nfnetlink_conntrack.h enum cntl_msg_types.</summary>
    public const int IPCTNL_MSG_CT_DELETE = 2;

    /// <summary>netlink.h: the nested flag of nla_type (what libnetfilter_conntrack sets).</summary>
    public const ushort NLA_F_NESTED = 0x8000;

    /// <summary>nfnetlink_conntrack.h enum ctattr_type, ctattr_tuple, ctattr_ip, ctattr_l4proto.</summary>
    public const ushort CTA_TUPLE_ORIG = 1;
    public const ushort CTA_TUPLE_IP = 1, CTA_TUPLE_PROTO = 2;
    public const ushort CTA_IP_V4_SRC = 1, CTA_IP_V4_DST = 2, CTA_IP_V6_SRC = 3, CTA_IP_V6_DST = 4;
    public const ushort CTA_PROTO_NUM = 1, CTA_PROTO_SRC_PORT = 2, CTA_PROTO_DST_PORT = 3;

    /// <summary>The longest request (IPv6): 16 + 4 + (4 + (4 + 2 × 20) + (4 + 3 × 8)).</summary>
    public const int MaxRequestLength = NLMSG_HDRLEN + SizeOfNfgenmsg + 4 + 4 + (2 * (RTA_HDRLEN + 16)) + 4 + (3 * 8);

    /// <summary>Writes the request that deletes <paramref name="flow"/>'s entry (found by this tuple in either direction); returns its length.</summary>
    public static int WriteDeleteRequest(Span<byte> destination, uint sequence, FlowTuple flow)
    {
        if (flow.Protocol is not (ProtocolType.Tcp or ProtocolType.Udp) || flow.Source.AddressFamily != flow.Destination.AddressFamily
            || flow.Source.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new ArgumentException($"A conntrack entry to delete is TCP or UDP, both ends of one family: {flow}.", nameof(flow));
        }
        bool v6 = flow.Source.AddressFamily == AddressFamily.InterNetworkV6;
        if (destination.Length < MaxRequestLength)
        {
            throw new ArgumentException("Destination too small for a ctnetlink request.", nameof(destination));
        }
        destination[..MaxRequestLength].Clear();
        var d = destination;
        BinaryPrimitives.WriteUInt16LittleEndian(d[4..], (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE);
        BinaryPrimitives.WriteUInt16LittleEndian(d[6..], NLM_F_REQUEST | NLM_F_ACK);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], sequence);
        d[NLMSG_HDRLEN] = v6 ? AF_INET6 : AF_INET;
        d[NLMSG_HDRLEN + 1] = NFNETLINK_V0;
        int offset = NLMSG_HDRLEN + SizeOfNfgenmsg;

        int orig = offset;
        offset += RTA_HDRLEN;
        int ip = offset;
        offset += RTA_HDRLEN;
        offset += Attribute(d[offset..], v6 ? CTA_IP_V6_SRC : CTA_IP_V4_SRC, flow.Source.Address.GetAddressBytes());
        offset += Attribute(d[offset..], v6 ? CTA_IP_V6_DST : CTA_IP_V4_DST, flow.Destination.Address.GetAddressBytes());
        Header(d[ip..], (ushort)(CTA_TUPLE_IP | NLA_F_NESTED), offset - ip);
        int proto = offset;
        offset += RTA_HDRLEN;
        offset += Attribute(d[offset..], CTA_PROTO_NUM, [(byte)flow.Protocol]);
        Span<byte> port = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(port, (ushort)flow.Source.Port);
        offset += Attribute(d[offset..], CTA_PROTO_SRC_PORT, port);
        BinaryPrimitives.WriteUInt16BigEndian(port, (ushort)flow.Destination.Port);
        offset += Attribute(d[offset..], CTA_PROTO_DST_PORT, port);
        Header(d[proto..], (ushort)(CTA_TUPLE_PROTO | NLA_F_NESTED), offset - proto);
        Header(d[orig..], (ushort)(CTA_TUPLE_ORIG | NLA_F_NESTED), offset - orig);
        BinaryPrimitives.WriteUInt32LittleEndian(d, (uint)offset);
        return offset;
    }

    private static void Header(Span<byte> destination, ushort type, int length)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(destination, (ushort)length);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], type);
    }

    private static int Attribute(Span<byte> destination, ushort type, ReadOnlySpan<byte> payload)
    {
        Header(destination, type, RTA_HDRLEN + payload.Length);
        payload.CopyTo(destination[RTA_HDRLEN..]);
        return RtNetlinkCodec.Align(RTA_HDRLEN + payload.Length);
    }
}
