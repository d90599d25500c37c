using System.Diagnostics;
using System.Globalization;
using L2Balance.Balancer.Net;
using L2Balance.Tests.Common;
using Xunit;
using static L2Balance.Balancer.Interop.Netlink;
using static L2Balance.Balancer.Interop.Packet;

namespace L2Balance.L2Bal.Tests.Interop;

/// <summary>
/// The C layouts and constants the Net shell shares with the kernel, checked against the system
/// headers by compiling a tiny C program (docs/conventions.md §11, Tmds.LibC StructTests/ConstantsTests).
/// </summary>
public sealed class NativeLayoutTests
{
    private const string Program = """
        #include <stdio.h>
        #include <stddef.h>
        #include <sys/socket.h>
        #include <sys/ioctl.h>
        #include <sys/mman.h>
        #include <net/if.h>
        #include <net/if_arp.h>
        #include <linux/if_packet.h>
        #include <linux/netlink.h>
        #include <linux/rtnetlink.h>
        #include <linux/if_addr.h>
        #include <linux/if_ether.h>
        #include <linux/filter.h>
        #define P(name, value) printf("%s %ld\n", name, (long)(value))
        int main(void) {
            P("sizeof(sockaddr_ll)", sizeof(struct sockaddr_ll));
            P("offsetof(sockaddr_ll.sll_protocol)", offsetof(struct sockaddr_ll, sll_protocol));
            P("offsetof(sockaddr_ll.sll_ifindex)", offsetof(struct sockaddr_ll, sll_ifindex));
            P("offsetof(sockaddr_ll.sll_pkttype)", offsetof(struct sockaddr_ll, sll_pkttype));
            P("sizeof(packet_mreq)", sizeof(struct packet_mreq));
            P("offsetof(packet_mreq.mr_type)", offsetof(struct packet_mreq, mr_type));
            P("offsetof(packet_mreq.mr_alen)", offsetof(struct packet_mreq, mr_alen));
            P("offsetof(packet_mreq.mr_address)", offsetof(struct packet_mreq, mr_address));
            P("sizeof(ifreq)", sizeof(struct ifreq));
            P("offsetof(ifreq.ifr_ifindex)", offsetof(struct ifreq, ifr_ifindex));
            P("offsetof(ifreq.ifr_hwaddr)", offsetof(struct ifreq, ifr_hwaddr));
            P("sizeof(nlmsghdr)", sizeof(struct nlmsghdr));
            P("sizeof(ifaddrmsg)", sizeof(struct ifaddrmsg));
            P("offsetof(ifaddrmsg.ifa_index)", offsetof(struct ifaddrmsg, ifa_index));
            P("sizeof(rtattr)", sizeof(struct rtattr));
            P("AF_PACKET", AF_PACKET);
            P("AF_NETLINK", AF_NETLINK);
            P("SOL_PACKET", SOL_PACKET);
            P("PACKET_ADD_MEMBERSHIP", PACKET_ADD_MEMBERSHIP);
            P("PACKET_DROP_MEMBERSHIP", PACKET_DROP_MEMBERSHIP);
            P("PACKET_IGNORE_OUTGOING", PACKET_IGNORE_OUTGOING);
            P("PACKET_MR_MULTICAST", PACKET_MR_MULTICAST);
            P("PACKET_MR_UNICAST", PACKET_MR_UNICAST);
            P("PACKET_OUTGOING", PACKET_OUTGOING);
            P("ARPHRD_ETHER", ARPHRD_ETHER);
            P("SIOCGIFINDEX", SIOCGIFINDEX);
            P("SIOCGIFHWADDR", SIOCGIFHWADDR);
            P("IFNAMSIZ", IFNAMSIZ);
            P("NLMSG_ERROR", NLMSG_ERROR);
            P("RTM_NEWADDR", RTM_NEWADDR);
            P("RTM_DELADDR", RTM_DELADDR);
            P("NLM_F_REQUEST", NLM_F_REQUEST);
            P("NLM_F_ACK", NLM_F_ACK);
            P("NLM_F_EXCL", NLM_F_EXCL);
            P("NLM_F_CREATE", NLM_F_CREATE);
            P("IFA_ADDRESS", IFA_ADDRESS);
            P("IFA_LOCAL", IFA_LOCAL);
            P("SOCK_CLOEXEC", SOCK_CLOEXEC);
            P("SO_RCVTIMEO", SO_RCVTIMEO);
            P("PACKET_STATISTICS", PACKET_STATISTICS);
            P("sizeof(tpacket_stats)", sizeof(struct tpacket_stats));
            P("sizeof(sock_filter)", sizeof(struct sock_filter));
            P("offsetof(sock_filter.k)", offsetof(struct sock_filter, k));
            P("sizeof(sock_fprog)", sizeof(struct sock_fprog));
            P("offsetof(sock_fprog.filter)", offsetof(struct sock_fprog, filter));
            P("SO_ATTACH_FILTER", SO_ATTACH_FILTER);
            P("MSG_DONTWAIT", MSG_DONTWAIT);
            P("ETH_P_ALL", ETH_P_ALL);
            P("BPF_LD|BPF_H|BPF_ABS", BPF_LD | BPF_H | BPF_ABS);
            P("BPF_LD|BPF_W|BPF_ABS", BPF_LD | BPF_W | BPF_ABS);
            P("BPF_JMP|BPF_JEQ|BPF_K", BPF_JMP | BPF_JEQ | BPF_K);
            P("BPF_RET|BPF_K", BPF_RET | BPF_K);
            P("PACKET_RX_RING", PACKET_RX_RING);
            P("PACKET_VERSION", PACKET_VERSION);
            P("TPACKET_V2", TPACKET_V2);
            P("TP_STATUS_KERNEL", TP_STATUS_KERNEL);
            P("TP_STATUS_USER", TP_STATUS_USER);
            P("TPACKET_ALIGNMENT", TPACKET_ALIGNMENT);
            P("TPACKET2_HDRLEN", TPACKET2_HDRLEN);
            P("sizeof(tpacket2_hdr)", sizeof(struct tpacket2_hdr));
            P("offsetof(tpacket2_hdr.tp_status)", offsetof(struct tpacket2_hdr, tp_status));
            P("offsetof(tpacket2_hdr.tp_len)", offsetof(struct tpacket2_hdr, tp_len));
            P("offsetof(tpacket2_hdr.tp_snaplen)", offsetof(struct tpacket2_hdr, tp_snaplen));
            P("offsetof(tpacket2_hdr.tp_mac)", offsetof(struct tpacket2_hdr, tp_mac));
            P("sizeof(tpacket_req)", sizeof(struct tpacket_req));
            P("offsetof(tpacket_req.tp_block_nr)", offsetof(struct tpacket_req, tp_block_nr));
            P("offsetof(tpacket_req.tp_frame_size)", offsetof(struct tpacket_req, tp_frame_size));
            P("offsetof(tpacket_req.tp_frame_nr)", offsetof(struct tpacket_req, tp_frame_nr));
            P("TPACKET_ALIGN(TPACKET2_HDRLEN+16)", TPACKET_ALIGN(TPACKET2_HDRLEN + 16));
            P("PROT_READ", PROT_READ);
            P("PROT_WRITE", PROT_WRITE);
            P("MAP_SHARED", MAP_SHARED);
            return 0;
        }
        """;

    private static readonly Lazy<Dictionary<string, long>> Native = new(() => NativeProgram.CompileAndRun(Program, "l2bal-layout-"));

    public static TheoryData<string, long> Expected => new()
    {
        { "sizeof(sockaddr_ll)", SizeOfSockaddrLl },
        { "offsetof(sockaddr_ll.sll_protocol)", 2 },
        { "offsetof(sockaddr_ll.sll_ifindex)", 4 },
        { "offsetof(sockaddr_ll.sll_pkttype)", 10 },
        { "sizeof(packet_mreq)", SizeOfPacketMreq },
        { "offsetof(packet_mreq.mr_type)", 4 },
        { "offsetof(packet_mreq.mr_alen)", 6 },
        { "offsetof(packet_mreq.mr_address)", 8 },
        { "sizeof(ifreq)", SizeOfIfreq },
        { "offsetof(ifreq.ifr_ifindex)", IFNAMSIZ },
        { "offsetof(ifreq.ifr_hwaddr)", IFNAMSIZ },
        { "sizeof(nlmsghdr)", NLMSG_HDRLEN },
        { "sizeof(ifaddrmsg)", SizeOfIfaddrmsg },
        { "offsetof(ifaddrmsg.ifa_index)", 4 },
        { "sizeof(rtattr)", RTA_HDRLEN },
        { "AF_PACKET", AF_PACKET },
        { "AF_NETLINK", AF_NETLINK },
        { "SOL_PACKET", SOL_PACKET },
        { "PACKET_ADD_MEMBERSHIP", PACKET_ADD_MEMBERSHIP },
        { "PACKET_DROP_MEMBERSHIP", PACKET_DROP_MEMBERSHIP },
        { "PACKET_IGNORE_OUTGOING", PACKET_IGNORE_OUTGOING },
        { "PACKET_MR_MULTICAST", PACKET_MR_MULTICAST },
        { "PACKET_MR_UNICAST", PACKET_MR_UNICAST },
        { "PACKET_OUTGOING", PACKET_OUTGOING },
        { "ARPHRD_ETHER", ARPHRD_ETHER },
        { "SIOCGIFINDEX", SIOCGIFINDEX },
        { "SIOCGIFHWADDR", SIOCGIFHWADDR },
        { "IFNAMSIZ", IFNAMSIZ },
        { "NLMSG_ERROR", NLMSG_ERROR },
        { "RTM_NEWADDR", RTM_NEWADDR },
        { "RTM_DELADDR", RTM_DELADDR },
        { "NLM_F_REQUEST", NLM_F_REQUEST },
        { "NLM_F_ACK", NLM_F_ACK },
        { "NLM_F_EXCL", NLM_F_EXCL },
        { "NLM_F_CREATE", NLM_F_CREATE },
        { "IFA_ADDRESS", IFA_ADDRESS },
        { "IFA_LOCAL", IFA_LOCAL },
        { "SOCK_CLOEXEC", SOCK_CLOEXEC },
        { "SO_RCVTIMEO", SO_RCVTIMEO },
        { "PACKET_STATISTICS", PACKET_STATISTICS },
        { "sizeof(tpacket_stats)", SizeOfTpacketStats },
        { "sizeof(sock_filter)", System.Runtime.InteropServices.Marshal.SizeOf<SockFilter>() },
        { "offsetof(sock_filter.k)", 4 },
        { "sizeof(sock_fprog)", SizeOfSockFprog },
        { "offsetof(sock_fprog.filter)", 8 },
        { "SO_ATTACH_FILTER", SO_ATTACH_FILTER },
        { "MSG_DONTWAIT", MSG_DONTWAIT },
        { "ETH_P_ALL", ETH_P_ALL },
        { "BPF_LD|BPF_H|BPF_ABS", BPF_LD_H_ABS },
        { "BPF_LD|BPF_W|BPF_ABS", BPF_LD_W_ABS },
        { "BPF_JMP|BPF_JEQ|BPF_K", BPF_JMP_JEQ_K },
        { "BPF_RET|BPF_K", BPF_RET_K },
        { "PACKET_RX_RING", PACKET_RX_RING },
        { "PACKET_VERSION", PACKET_VERSION },
        { "TPACKET_V2", TPACKET_V2 },
        { "TP_STATUS_KERNEL", TP_STATUS_KERNEL },
        { "TP_STATUS_USER", TP_STATUS_USER },
        { "TPACKET_ALIGNMENT", TPACKET_ALIGNMENT },
        { "TPACKET2_HDRLEN", TPACKET2_HDRLEN },
        { "sizeof(tpacket2_hdr)", SizeOfTpacket2Hdr },
        { "offsetof(tpacket2_hdr.tp_status)", TpStatusOffset },
        { "offsetof(tpacket2_hdr.tp_len)", TpLenOffset },
        { "offsetof(tpacket2_hdr.tp_snaplen)", TpSnaplenOffset },
        { "offsetof(tpacket2_hdr.tp_mac)", TpMacOffset },
        { "sizeof(tpacket_req)", System.Runtime.InteropServices.Marshal.SizeOf<TpacketReq>() },
        { "offsetof(tpacket_req.tp_block_nr)", 4 },
        { "offsetof(tpacket_req.tp_frame_size)", 8 },
        { "offsetof(tpacket_req.tp_frame_nr)", 12 },
        { "TPACKET_ALIGN(TPACKET2_HDRLEN+16)", PacketStructs.TpacketAlign(TPACKET2_HDRLEN + 16) },
        { "PROT_READ", PROT_READ },
        { "PROT_WRITE", PROT_WRITE },
        { "MAP_SHARED", MAP_SHARED },
    };

    [SkippableTheory]
    [MemberData(nameof(Expected))]
    public void NativeConstant_ComparedWithSystemHeaders_IsEqual(string name, long managed)
    {
        Assert.True(Native.Value.TryGetValue(name, out long native), $"{name} not printed by the C program");
        Assert.Equal(native, managed);
    }

    [SkippableFact]
    public void AddressRequestLength_ComparedWithNlmsgSpace_IsEqual()
    {
        // NLMSG_SPACE(sizeof(ifaddrmsg)) + 2 * RTA_SPACE(4)
        long native = Native.Value["sizeof(nlmsghdr)"] + Native.Value["sizeof(ifaddrmsg)"] + (2 * (Native.Value["sizeof(rtattr)"] + 4));
        Assert.Equal(RtNetlinkCodec.AddressRequestLength, native);
    }
}
