using System.Runtime.InteropServices;

namespace L2Balance.Proxy.Interop;

internal static partial class Interop
{
    /// <summary>
    /// TCP_REPAIR and its companions (linux/tcp.h, include/net/tcp.h), the socket calls that read and
    /// rebuild a connection's state for live migration (issue 19; docs/design.md#live-migration-design).
    /// </summary>
    internal static partial class TcpRepair
    {
        internal const int SOL_SOCKET = 1;
        internal const int SOL_TCP = 6;
        internal const int SO_REUSEADDR = 2;
        internal const int SO_SNDBUF = 7;
        internal const int SO_RCVBUF = 8;
        internal const int SO_SNDBUFFORCE = 32;
        internal const int SO_RCVBUFFORCE = 33;
        internal const int SO_MARK = 36;

        internal const int TCP_MAXSEG = 2;
        internal const int TCP_INFO = 11;
        internal const int TCP_REPAIR = 19;
        internal const int TCP_REPAIR_QUEUE = 20;
        internal const int TCP_QUEUE_SEQ = 21;
        internal const int TCP_REPAIR_OPTIONS = 22;
        internal const int TCP_TIMESTAMP = 24;
        internal const int TCP_REPAIR_WINDOW = 29;

        /// <summary>Values of TCP_REPAIR: on, off (with a window probe that wakes the peer), off without it.</summary>
        internal const int TCP_REPAIR_ON = 1;
        internal const int TCP_REPAIR_OFF = 0;

        /// <summary>Values of TCP_REPAIR_QUEUE.</summary>
        internal const int TCP_NO_QUEUE = 0;
        internal const int TCP_RECV_QUEUE = 1;
        internal const int TCP_SEND_QUEUE = 2;

        /// <summary>Option codes of TCP_REPAIR_OPTIONS (the TCP header's option kinds).</summary>
        internal const uint TCPOPT_MSS = 2;
        internal const uint TCPOPT_WINDOW = 3;
        internal const uint TCPOPT_SACK_PERM = 4;
        internal const uint TCPOPT_TIMESTAMP = 8;

        /// <summary>Bits of tcp_info.tcpi_options.</summary>
        internal const byte TCPI_OPT_TIMESTAMPS = 1;
        internal const byte TCPI_OPT_SACK = 2;
        internal const byte TCPI_OPT_WSCALE = 4;

        /// <summary>tcp_info.tcpi_state of an established connection.</summary>
        internal const byte TCP_ESTABLISHED = 1;

        /// <summary>ioctl requests: bytes in the receive queue, in the send queue (unacked + unsent), not yet sent.</summary>
        internal const nuint SIOCINQ = 0x541B;
        internal const nuint SIOCOUTQ = 0x5411;
        internal const nuint SIOCOUTQNSD = 0x894B;

        internal const int MSG_PEEK = 2;
        internal const int MSG_DONTWAIT = 0x40;

        internal const int EINTR = 4;
        internal const int EAGAIN = 11;
        internal const int ENOMEM = 12;

        /// <summary>Offsets in struct tcp_info of the fields read (verified against linux/tcp.h by the tests).</summary>
        internal const int TcpInfoStateOffset = 0;
        internal const int TcpInfoOptionsOffset = 5;
        internal const int TcpInfoWscaleOffset = 6;
        internal const int TcpInfoLength = 104;

        /// <summary>struct tcp_repair_opt.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct tcp_repair_opt
        {
            internal uint opt_code;
            internal uint opt_val;
        }

        /// <summary>struct tcp_repair_window.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct tcp_repair_window
        {
            internal uint snd_wl1;
            internal uint snd_wnd;
            internal uint max_window;
            internal uint rcv_wnd;
            internal uint rcv_wup;
        }

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial int setsockopt(SafeHandle sockfd, int level, int optname, void* optval, int optlen);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial int getsockopt(SafeHandle sockfd, int level, int optname, void* optval, int* optlen);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial int ioctl(SafeHandle fd, nuint request, int* value);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial nint recv(SafeHandle sockfd, byte* buf, nuint len, int flags);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static unsafe partial nint send(SafeHandle sockfd, byte* buf, nuint len, int flags);
    }
}
