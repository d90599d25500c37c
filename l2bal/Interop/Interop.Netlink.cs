using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace L2Balance.Balancer;

internal static partial class Interop
{
    /// <summary>
    /// rtnetlink (linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h), C names kept (docs/conventions.md §9).
    /// .NET's AddressFamily has no AF_NETLINK member (16 is AppleTalk there, which the runtime maps
    /// to AF_APPLETALK), so the socket and its I/O are plain syscalls on a SafeSocketHandle.
    /// </summary>
    internal static partial class Netlink
    {
        /// <summary>linux/socket.h.</summary>
        internal const int AF_NETLINK = 16;
        internal const int SOCK_RAW = 3;
        internal const int SOCK_CLOEXEC = 0x80000;
        internal const int SOL_SOCKET = 1;
        internal const int SO_RCVTIMEO = 20;
        internal const int EINTR = 4;

        /// <summary>recv(2) flag: return the datagram's real length even when the buffer was shorter (netlink(7)).</summary>
        internal const int MSG_TRUNC = 0x20;
        internal const int EAGAIN = 11;

        /// <summary>A netlink socket whose receive buffer overran: the kernel dropped messages for it (netlink(7)).</summary>
        internal const int ENOBUFS = 105;

        /// <summary>socket(2); an invalid handle (-1) on failure.</summary>
        [LibraryImport(Packet.Libc, EntryPoint = "socket", SetLastError = true)]
        internal static partial SafeSocketHandle socket(int domain, int type, int protocol);

        /// <summary>send(2).</summary>
        [LibraryImport(Packet.Libc, EntryPoint = "send", SetLastError = true)]
        internal static partial nint send(SafeSocketHandle socket, ReadOnlySpan<byte> buffer, nuint length, int flags);

        /// <summary>recv(2).</summary>
        [LibraryImport(Packet.Libc, EntryPoint = "recv", SetLastError = true)]
        internal static partial nint recv(SafeSocketHandle socket, Span<byte> buffer, nuint length, int flags);

        /// <summary>setsockopt(2).</summary>
        [LibraryImport(Packet.Libc, EntryPoint = "setsockopt", SetLastError = true)]
        internal static partial int setsockopt(SafeSocketHandle socket, int level, int optionName, ReadOnlySpan<byte> optionValue, int optionLength);

        /// <summary>linux/netlink.h: the routing family of AF_NETLINK.</summary>
        internal const int NETLINK_ROUTE = 0;

        /// <summary>sizeof(struct nlmsghdr), sizeof(struct ifaddrmsg), sizeof(struct rtattr), sizeof(struct nlmsgerr) without the echoed header.</summary>
        internal const int NLMSG_HDRLEN = 16;
        internal const int SizeOfIfaddrmsg = 8;
        internal const int RTA_HDRLEN = 4;
        internal const int NLMSG_ALIGNTO = 4;

        /// <summary>nlmsghdr.nlmsg_type.</summary>
        internal const ushort NLMSG_NOOP = 1;
        internal const ushort NLMSG_ERROR = 2;
        internal const ushort NLMSG_DONE = 3;
        internal const ushort RTM_NEWADDR = 20;
        internal const ushort RTM_DELADDR = 21;

        /// <summary>nlmsghdr.nlmsg_flags.</summary>
        internal const ushort NLM_F_REQUEST = 0x001;
        internal const ushort NLM_F_ACK = 0x004;
        internal const ushort NLM_F_EXCL = 0x200;
        internal const ushort NLM_F_CREATE = 0x400;

        /// <summary>rtattr types of RTM_*ADDR.</summary>
        internal const ushort IFA_ADDRESS = 1;
        internal const ushort IFA_LOCAL = 2;

        /// <summary>linux/socket.h.</summary>
        internal const byte AF_INET = 2;
        internal const byte AF_INET6 = 10;

        /// <summary>if_addr.h IFA_F_NODAD: no duplicate address detection for an IPv6 address (`ip addr add … nodad`).</summary>
        internal const byte IFA_F_NODAD = 0x02;

        /// <summary>linux/netlink.h: the socket-diagnostics family of AF_NETLINK (sock_diag(7)).</summary>
        internal const int NETLINK_SOCK_DIAG = 4;

        /// <summary>linux/sock_diag.h: the request and reply type of an inet_diag dump.</summary>
        internal const ushort SOCK_DIAG_BY_FAMILY = 20;

        /// <summary>NLM_F_ROOT | NLM_F_MATCH: a dump of every matching object.</summary>
        internal const ushort NLM_F_DUMP = 0x300;

        /// <summary>linux/in.h.</summary>
        internal const byte IPPROTO_TCP = 6;

        /// <summary>include/net/tcp_states.h: TCP_LISTEN, as a bit of inet_diag_req_v2.idiag_states.</summary>
        internal const int TCP_LISTEN = 10;

        /// <summary>sizeof(struct inet_diag_req_v2), sizeof(struct inet_diag_msg), sizeof(struct inet_diag_sockid).</summary>
        internal const int SizeOfInetDiagReqV2 = 56;
        internal const int SizeOfInetDiagMsg = 72;
        internal const int SizeOfInetDiagSockid = 48;

        /// <summary>linux/netlink.h: the netfilter family of AF_NETLINK (nfnetlink).</summary>
        internal const int NETLINK_NETFILTER = 12;

        /// <summary>linux/netfilter/nfnetlink.h: the log subsystem (high byte of nlmsg_type), the message version, sizeof(struct nfgenmsg).</summary>
        internal const int NFNL_SUBSYS_ULOG = 4;
        internal const byte NFNETLINK_V0 = 0;
        internal const int SizeOfNfgenmsg = 4;

        /// <summary>linux/netfilter/nfnetlink_log.h: message types (low byte of nlmsg_type).</summary>
        internal const int NFULNL_MSG_PACKET = 0;
        internal const int NFULNL_MSG_CONFIG = 1;

        /// <summary>nfnetlink_log.h enum nfulnl_attr_type: the logged packet from its network header.</summary>
        internal const ushort NFULA_PAYLOAD = 9;

        /// <summary>nfnetlink_log.h enum nfulnl_attr_config and its values.</summary>
        internal const ushort NFULA_CFG_CMD = 1;
        internal const ushort NFULA_CFG_MODE = 2;
        internal const ushort NFULA_CFG_QTHRESH = 5;
        internal const byte NFULNL_CFG_CMD_BIND = 1;
        internal const byte NFULNL_COPY_PACKET = 0x02;

        /// <summary>linux/netlink.h: nla_type's flag bits (nested, network byte order), masked off the type.</summary>
        internal const ushort NLA_TYPE_MASK = 0x3fff;

        /// <summary>linux/in.h.</summary>
        internal const byte IPPROTO_ICMP = 1;
        internal const byte IPPROTO_UDP = 17;

        /// <summary>rtnetlink.h rt_scope_t: RT_SCOPE_UNIVERSE, what `ip addr add` uses for a non-127/8 address.</summary>
        internal const byte RT_SCOPE_UNIVERSE = 0;
    }
}
