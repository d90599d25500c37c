using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace L2Balance.Balancer;

internal static partial class Interop
{
    /// <summary>
    /// AF_PACKET sockets (packet(7), linux/if_packet.h, linux/if_ether.h) and the few socket
    /// syscalls .NET's <see cref="System.Net.Sockets.Socket"/> does not expose for them.
    /// Constant names are the C names (docs/conventions.md §9); layouts are checked against C in the unit tests.
    /// </summary>
    internal static partial class Packet
    {
        /// <summary>Kept inside this nested class so it never collides with a shared Interop.Libraries.</summary>
        internal const string Libc = "libc";

        /// <summary>linux/socket.h.</summary>
        internal const int AF_PACKET = 17;

        /// <summary>linux/socket.h: option level of packet(7) options.</summary>
        internal const int SOL_PACKET = 263;

        /// <summary>linux/if_packet.h option names.</summary>
        internal const int PACKET_ADD_MEMBERSHIP = 1;
        internal const int PACKET_DROP_MEMBERSHIP = 2;

        /// <summary>linux/if_packet.h (kernel 4.20+): never queue frames this host sends to this socket.</summary>
        internal const int PACKET_IGNORE_OUTGOING = 23;

        /// <summary>linux/if_packet.h: PACKET_STATISTICS (struct tpacket_stats: tp_packets, tp_drops; read clears them).</summary>
        internal const int PACKET_STATISTICS = 6;

        /// <summary>sizeof(struct tpacket_stats).</summary>
        internal const int SizeOfTpacketStats = 8;

        /// <summary>linux/if_packet.h: packet_mreq.mr_type.</summary>
        internal const ushort PACKET_MR_MULTICAST = 0;
        internal const ushort PACKET_MR_PROMISC = 1;
        internal const ushort PACKET_MR_ALLMULTI = 2;
        internal const ushort PACKET_MR_UNICAST = 3;

        /// <summary>linux/if_packet.h: sockaddr_ll.sll_pkttype.</summary>
        internal const byte PACKET_HOST = 0;
        internal const byte PACKET_BROADCAST = 1;
        internal const byte PACKET_MULTICAST = 2;
        internal const byte PACKET_OTHERHOST = 3;
        internal const byte PACKET_OUTGOING = 4;

        /// <summary>linux/if_arp.h: ARPHRD_ETHER, sockaddr_ll.sll_hatype of Ethernet.</summary>
        internal const ushort ARPHRD_ETHER = 1;

        /// <summary>linux/sockios.h: interface index / hardware address by name (struct ifreq).</summary>
        internal const uint SIOCGIFINDEX = 0x8933;
        internal const uint SIOCGIFHWADDR = 0x8927;

        /// <summary>net/if.h IFNAMSIZ, sizeof(struct ifreq) on 64-bit Linux.</summary>
        internal const int IFNAMSIZ = 16;
        internal const int SizeOfIfreq = 40;

        /// <summary>sizeof(struct sockaddr_ll).</summary>
        internal const int SizeOfSockaddrLl = 20;

        /// <summary>sizeof(struct packet_mreq).</summary>
        internal const int SizeOfPacketMreq = 16;

        /// <summary>linux/if_ether.h: ETH_P_ALL, every protocol (a bind with it hooks every frame of the interface).</summary>
        internal const ushort ETH_P_ALL = 0x0003;

        /// <summary>asm-generic/socket.h: the classic BPF filter option of level SOL_SOCKET (socket(7)).</summary>
        internal const int SO_ATTACH_FILTER = 26;

        /// <summary>linux/socket.h: recv(2) without waiting.</summary>
        internal const int MSG_DONTWAIT = 0x40;

        /// <summary>linux/filter.h classic BPF opcodes (BPF_LD|BPF_H|BPF_ABS and so on) used by the filters here.</summary>
        internal const ushort BPF_LD_H_ABS = 0x28;
        internal const ushort BPF_LD_W_ABS = 0x20;
        internal const ushort BPF_LD_B_ABS = 0x30;
        internal const ushort BPF_JMP_JEQ_K = 0x15;
        internal const ushort BPF_RET_K = 0x06;

        /// <summary>linux/filter.h struct sock_filter: one classic BPF instruction (8 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal readonly record struct SockFilter(ushort Code, byte JumpTrue, byte JumpFalse, uint K);

        /// <summary>linux/filter.h struct sock_fprog: length and pointer (16 bytes on 64-bit).</summary>
        [StructLayout(LayoutKind.Sequential)]
        private unsafe struct SockFprog
        {
            public ushort Len;
            public SockFilter* Filter;
        }

        /// <summary>sizeof(struct sock_fprog) on 64-bit Linux.</summary>
        internal const int SizeOfSockFprog = 16;

        /// <summary>setsockopt(SO_ATTACH_FILTER) with <paramref name="program"/>; returns 0 or -1 with errno set.</summary>
        internal static unsafe int AttachFilter(SafeSocketHandle socket, ReadOnlySpan<SockFilter> program)
        {
            fixed (SockFilter* instructions = program)
            {
                var fprog = new SockFprog { Len = (ushort)program.Length, Filter = instructions };
                return setsockopt(socket, Netlink.SOL_SOCKET, SO_ATTACH_FILTER, new ReadOnlySpan<byte>(&fprog, sizeof(SockFprog)), sizeof(SockFprog));
            }
        }

        /// <summary>recv(2); returns the length, or -1 with errno set.</summary>
        [LibraryImport(Libc, EntryPoint = "recv", SetLastError = true)]
        internal static partial nint recv(SafeSocketHandle socket, Span<byte> buffer, nuint length, int flags);

        /// <summary>bind(2).</summary>
        [LibraryImport(Libc, EntryPoint = "bind", SetLastError = true)]
        internal static partial int bind(SafeSocketHandle socket, ReadOnlySpan<byte> address, int addressLength);

        /// <summary>setsockopt(2).</summary>
        [LibraryImport(Libc, EntryPoint = "setsockopt", SetLastError = true)]
        internal static partial int setsockopt(SafeSocketHandle socket, int level, int optionName, ReadOnlySpan<byte> optionValue, int optionLength);

        /// <summary>getsockopt(2).</summary>
        [LibraryImport(Libc, EntryPoint = "getsockopt", SetLastError = true)]
        internal static partial int getsockopt(SafeSocketHandle socket, int level, int optionName, Span<byte> optionValue, ref int optionLength);

        /// <summary>ioctl(2) with a struct ifreq argument.</summary>
        [LibraryImport(Libc, EntryPoint = "ioctl", SetLastError = true)]
        internal static partial int ioctl(SafeSocketHandle fd, nuint request, Span<byte> ifreq);
    }
}
