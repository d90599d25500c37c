using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Kernel;
using L2Balance.Balancer.Net;
using Xunit;

namespace L2Balance.L2Bal.Tests.Net;

public sealed class CtNetlinkCodecTests
{
    private static readonly FlowTuple Flow = new(ProtocolType.Tcp, new IPEndPoint(IPAddress.Parse("198.18.0.101"), 44369), new IPEndPoint(IPAddress.Parse("198.18.0.10"), 1080));

    [Fact]
    public void DeleteRequest_Ipv4Tcp_HasExactLayout()
    {
        var buffer = new byte[CtNetlinkCodec.MaxRequestLength];
        int n = CtNetlinkCodec.WriteDeleteRequest(buffer, sequence: 7, Flow);

        // Derived by hand from linux/netfilter/nfnetlink_conntrack.h and linux/netlink.h (nla headers little-endian, payloads big-endian).
        byte[] expected =
        [
            // nlmsghdr: len 72, type (NFNL_SUBSYS_CTNETLINK 1 << 8) | IPCTNL_MSG_CT_DELETE 2 = 0x0102, flags REQUEST|ACK = 0x0005, seq 7, pid 0
            72, 0, 0, 0, 0x02, 0x01, 0x05, 0x00, 7, 0, 0, 0, 0, 0, 0, 0,
            // nfgenmsg: AF_INET, NFNETLINK_V0, res_id 0
            2, 0, 0, 0,
            // CTA_TUPLE_ORIG (1 | NLA_F_NESTED 0x8000): len 4 + 20 + 28 = 52
            52, 0, 0x01, 0x80,
            // CTA_TUPLE_IP (1, nested): len 4 + 8 + 8 = 20
            20, 0, 0x01, 0x80,
            // CTA_IP_V4_SRC (1): 198.18.0.101
            8, 0, 1, 0, 198, 18, 0, 101,
            // CTA_IP_V4_DST (2): 198.18.0.10
            8, 0, 2, 0, 198, 18, 0, 10,
            // CTA_TUPLE_PROTO (2, nested): len 4 + 3 × 8 = 28
            28, 0, 0x02, 0x80,
            // CTA_PROTO_NUM (1): len 5 (u8 6, TCP), 3 bytes pad
            5, 0, 1, 0, 6, 0, 0, 0,
            // CTA_PROTO_SRC_PORT (2): len 6, 44369 = 0xad51 big-endian, 2 bytes pad
            6, 0, 2, 0, 0xad, 0x51, 0, 0,
            // CTA_PROTO_DST_PORT (3): len 6, 1080 = 0x0438 big-endian, 2 bytes pad
            6, 0, 3, 0, 0x04, 0x38, 0, 0,
        ];
        Assert.Equal(expected, buffer[..n]);
    }

    [Fact]
    public void DeleteRequest_Ipv6Udp_CarriesSixteenByteAddressesAndFamily()
    {
        var flow = new FlowTuple(ProtocolType.Udp, new IPEndPoint(IPAddress.Parse("fdc6:1200::65"), 5000), new IPEndPoint(IPAddress.Parse("fdc6:1200::a"), 53));
        var buffer = new byte[CtNetlinkCodec.MaxRequestLength];
        int n = CtNetlinkCodec.WriteDeleteRequest(buffer, 1, flow);

        Assert.Equal(CtNetlinkCodec.MaxRequestLength, n);
        Assert.Equal(10, buffer[16]); // nfgenmsg family AF_INET6
        Assert.Equal(4 + 20 + 20, buffer[24]); // CTA_TUPLE_IP (after nlmsghdr 16, nfgenmsg 4, CTA_TUPLE_ORIG 4): two 16-byte addresses
        Assert.Equal(17, buffer[24 + 44 + 8]); // CTA_PROTO_NUM payload (CTA_TUPLE_PROTO 4, its header 4): UDP
    }

    [Fact]
    public void DeleteRequest_MixedFamilies_Throws()
    {
        var flow = new FlowTuple(ProtocolType.Tcp, new IPEndPoint(IPAddress.Parse("198.18.0.101"), 1), new IPEndPoint(IPAddress.Parse("fdc6:1200::a"), 2));
        Assert.Throws<ArgumentException>(() => CtNetlinkCodec.WriteDeleteRequest(new byte[CtNetlinkCodec.MaxRequestLength], 1, flow));
    }
}
