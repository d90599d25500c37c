using L2Balance.Tests.Common;
using Xunit;
using static L2Balance.Proxy.Interop.Interop.Netlink;

namespace L2Balance.Proxy.Tests.Interop;

/// <summary>The constants and the sockaddr_nl size of the node-address watch, checked against the system headers (docs/conventions.md §11).</summary>
public sealed class NetlinkLayoutTests
{
    private const string Program = """
        #include <stdio.h>
        #include <errno.h>
        #include <sys/socket.h>
        #include <linux/netlink.h>
        #include <linux/rtnetlink.h>
        #define P(name, value) printf("%s %ld\n", name, (long)(value))
        int main(void) {
            P("sizeof(sockaddr_nl)", sizeof(struct sockaddr_nl));
            P("AF_NETLINK", AF_NETLINK);
            P("SOCK_RAW", SOCK_RAW);
            P("SOCK_CLOEXEC", SOCK_CLOEXEC);
            P("NETLINK_ROUTE", NETLINK_ROUTE);
            P("RTMGRP_IPV4_IFADDR", RTMGRP_IPV4_IFADDR);
            P("RTMGRP_IPV6_IFADDR", RTMGRP_IPV6_IFADDR);
            P("SOL_SOCKET", SOL_SOCKET);
            P("SO_RCVTIMEO", SO_RCVTIMEO);
            P("ENOBUFS", ENOBUFS);
            return 0;
        }
        """;

    private static readonly Dictionary<string, long> Managed = new()
    {
        ["sizeof(sockaddr_nl)"] = SockaddrNlSize,
        ["AF_NETLINK"] = AF_NETLINK,
        ["SOCK_RAW"] = SOCK_RAW,
        ["SOCK_CLOEXEC"] = SOCK_CLOEXEC,
        ["NETLINK_ROUTE"] = NETLINK_ROUTE,
        ["RTMGRP_IPV4_IFADDR"] = RTMGRP_IPV4_IFADDR,
        ["RTMGRP_IPV6_IFADDR"] = RTMGRP_IPV6_IFADDR,
        ["SOL_SOCKET"] = SOL_SOCKET,
        ["SO_RCVTIMEO"] = SO_RCVTIMEO,
        ["ENOBUFS"] = ENOBUFS,
    };

    [SkippableFact]
    public void NetlinkConstants_ComparedWithSystemHeaders_AreEqual()
    {
        var native = NativeProgram.CompileAndRun(Program, "l2proxy-netlink-");

        Assert.Equal(Managed.OrderBy(p => p.Key, StringComparer.Ordinal), native.OrderBy(p => p.Key, StringComparer.Ordinal));
    }
}
