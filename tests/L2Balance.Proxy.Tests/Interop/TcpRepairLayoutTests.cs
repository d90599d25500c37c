using L2Balance.Tests.Common;
using Xunit;
using static L2Balance.Proxy.Interop.Interop.TcpRepair;

namespace L2Balance.Proxy.Tests.Interop;

/// <summary>
/// The TCP_REPAIR constants and layouts of live migration (proxy/Migration/TcpRepair.cs), checked against
/// linux/tcp.h by compiling a tiny C program (docs/conventions.md §11). The TCPOPT_* codes are the TCP
/// header's option kinds (RFC 9293, 7323, 2018), not in linux/tcp.h.
/// </summary>
public sealed class TcpRepairLayoutTests
{
    private const string Program = """
        #include <stdio.h>
        #include <stddef.h>
        #include <errno.h>
        #include <sys/ioctl.h>
        #include <sys/socket.h>
        #include <linux/sockios.h>
        #include <linux/tcp.h>
        #define P(name, value) printf("%s %ld\n", name, (long)(value))
        int main(void) {
            P("SOL_SOCKET", SOL_SOCKET);
            P("SO_REUSEADDR", SO_REUSEADDR);
            P("SO_SNDBUF", SO_SNDBUF);
            P("SO_RCVBUF", SO_RCVBUF);
            P("SO_SNDBUFFORCE", SO_SNDBUFFORCE);
            P("SO_RCVBUFFORCE", SO_RCVBUFFORCE);
            P("TCP_MAXSEG", TCP_MAXSEG);
            P("TCP_INFO", TCP_INFO);
            P("TCP_REPAIR", TCP_REPAIR);
            P("TCP_REPAIR_QUEUE", TCP_REPAIR_QUEUE);
            P("TCP_QUEUE_SEQ", TCP_QUEUE_SEQ);
            P("TCP_REPAIR_OPTIONS", TCP_REPAIR_OPTIONS);
            P("TCP_TIMESTAMP", TCP_TIMESTAMP);
            P("TCP_REPAIR_WINDOW", TCP_REPAIR_WINDOW);
            P("TCP_REPAIR_ON", TCP_REPAIR_ON);
            P("TCP_REPAIR_OFF", TCP_REPAIR_OFF);
            P("TCP_NO_QUEUE", TCP_NO_QUEUE);
            P("TCP_RECV_QUEUE", TCP_RECV_QUEUE);
            P("TCP_SEND_QUEUE", TCP_SEND_QUEUE);
            P("TCPI_OPT_TIMESTAMPS", TCPI_OPT_TIMESTAMPS);
            P("TCPI_OPT_SACK", TCPI_OPT_SACK);
            P("TCPI_OPT_WSCALE", TCPI_OPT_WSCALE);
            P("SIOCINQ", SIOCINQ);
            P("SIOCOUTQ", SIOCOUTQ);
            P("SIOCOUTQNSD", SIOCOUTQNSD);
            P("MSG_PEEK", MSG_PEEK);
            P("MSG_DONTWAIT", MSG_DONTWAIT);
            P("EINTR", EINTR);
            P("EAGAIN", EAGAIN);
            P("ENOMEM", ENOMEM);
            P("offsetof(tcp_info.tcpi_state)", offsetof(struct tcp_info, tcpi_state));
            P("offsetof(tcp_info.tcpi_options)", offsetof(struct tcp_info, tcpi_options));
            P("offsetof(tcp_info.tcpi_rto)", offsetof(struct tcp_info, tcpi_rto));
            P("sizeof(tcp_info)_at_least", sizeof(struct tcp_info) >= 104 ? 104 : sizeof(struct tcp_info));
            P("sizeof(tcp_repair_opt)", sizeof(struct tcp_repair_opt));
            P("sizeof(tcp_repair_window)", sizeof(struct tcp_repair_window));
            P("offsetof(tcp_repair_window.rcv_wup)", offsetof(struct tcp_repair_window, rcv_wup));
            return 0;
        }
        """;

    private static readonly Lazy<Dictionary<string, long>> Native = new(() => NativeProgram.CompileAndRun(Program, "l2proxy-tcprepair-"));

    public static TheoryData<string, long> Expected => new()
    {
        { "SOL_SOCKET", SOL_SOCKET },
        { "SO_REUSEADDR", SO_REUSEADDR },
        { "SO_SNDBUF", SO_SNDBUF },
        { "SO_RCVBUF", SO_RCVBUF },
        { "SO_SNDBUFFORCE", SO_SNDBUFFORCE },
        { "SO_RCVBUFFORCE", SO_RCVBUFFORCE },
        { "TCP_MAXSEG", TCP_MAXSEG },
        { "TCP_INFO", TCP_INFO },
        { "TCP_REPAIR", TCP_REPAIR },
        { "TCP_REPAIR_QUEUE", TCP_REPAIR_QUEUE },
        { "TCP_QUEUE_SEQ", TCP_QUEUE_SEQ },
        { "TCP_REPAIR_OPTIONS", TCP_REPAIR_OPTIONS },
        { "TCP_TIMESTAMP", TCP_TIMESTAMP },
        { "TCP_REPAIR_WINDOW", TCP_REPAIR_WINDOW },
        { "TCP_REPAIR_ON", TCP_REPAIR_ON },
        { "TCP_REPAIR_OFF", TCP_REPAIR_OFF },
        { "TCP_NO_QUEUE", TCP_NO_QUEUE },
        { "TCP_RECV_QUEUE", TCP_RECV_QUEUE },
        { "TCP_SEND_QUEUE", TCP_SEND_QUEUE },
        { "TCPI_OPT_TIMESTAMPS", TCPI_OPT_TIMESTAMPS },
        { "TCPI_OPT_SACK", TCPI_OPT_SACK },
        { "TCPI_OPT_WSCALE", TCPI_OPT_WSCALE },
        { "SIOCINQ", (long)SIOCINQ },
        { "SIOCOUTQ", (long)SIOCOUTQ },
        { "SIOCOUTQNSD", (long)SIOCOUTQNSD },
        { "MSG_PEEK", MSG_PEEK },
        { "MSG_DONTWAIT", MSG_DONTWAIT },
        { "EINTR", EINTR },
        { "EAGAIN", EAGAIN },
        { "ENOMEM", ENOMEM },
        { "offsetof(tcp_info.tcpi_state)", TcpInfoStateOffset },
        { "offsetof(tcp_info.tcpi_options)", TcpInfoOptionsOffset },
        // The window scales are the byte after tcpi_options (a bitfield: no offsetof), the one before tcpi_rto's padding.
        { "offsetof(tcp_info.tcpi_rto)", TcpInfoWscaleOffset + 2 },
        { "sizeof(tcp_info)_at_least", TcpInfoLength },
        { "sizeof(tcp_repair_opt)", System.Runtime.CompilerServices.Unsafe.SizeOf<tcp_repair_opt>() },
        { "sizeof(tcp_repair_window)", System.Runtime.CompilerServices.Unsafe.SizeOf<tcp_repair_window>() },
        { "offsetof(tcp_repair_window.rcv_wup)", 16 },
    };

    [SkippableTheory]
    [MemberData(nameof(Expected))]
    public void TcpRepairConstant_ComparedWithLinuxHeaders_IsEqual(string name, long managed)
    {
        Assert.True(Native.Value.TryGetValue(name, out long native), $"{name} not printed by the C program");
        Assert.Equal(native, managed);
    }
}
