using System.Runtime.InteropServices;

namespace L2Balance.Proxy.Interop;

internal static partial class Interop
{
    /// <summary>
    /// A NETLINK_ROUTE socket subscribed to address changes (rtnetlink(7)), for the live set of the
    /// node's own addresses (<see cref="Server.NodeAddressWatch"/>). Only notifications are read; the
    /// addresses themselves come from getifaddrs.
    /// </summary>
    internal static partial class Netlink
    {
        internal const int AF_NETLINK = 16;
        internal const int SOCK_RAW = 3;
        internal const int SOCK_CLOEXEC = 0x80000;
        internal const int NETLINK_ROUTE = 0;
        internal const uint RTMGRP_IPV4_IFADDR = 0x10;
        internal const uint RTMGRP_IPV6_IFADDR = 0x100;
        internal const int SOL_SOCKET = 1;
        internal const int SO_RCVTIMEO = 20;
        internal const int EINTR = 4;
        internal const int EAGAIN = 11;

        /// <summary>The socket's receive queue overflowed: notifications were lost, so read everything again.</summary>
        internal const int ENOBUFS = 105;

        /// <summary>sizeof(struct sockaddr_nl): u16 nl_family, u16 nl_pad, u32 nl_pid, u32 nl_groups.</summary>
        internal const int SockaddrNlSize = 12;

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int socket(int domain, int type, int protocol);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial int bind(SafeHandle sockfd, byte* addr, int addrlen);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial int setsockopt(SafeHandle sockfd, int level, int optname, byte* optval, int optlen);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial nint recv(SafeHandle sockfd, byte* buf, nuint len, int flags);
    }
}
