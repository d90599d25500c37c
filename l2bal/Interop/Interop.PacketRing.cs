using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace L2Balance.Balancer;

internal static partial class Interop
{
    /// <summary>
    /// PACKET_RX_RING with TPACKET_V2 frames (linux/if_packet.h; the kernel's
    /// Documentation/networking/packet_mmap.rst) and the mmap(2) that maps it. Layouts are checked
    /// against C in the unit tests (docs/conventions.md §11).
    /// <code>
    /// struct tpacket2_hdr {          // 32 bytes, at the start of each frame slot
    ///     __u32 tp_status;           //  0  TP_STATUS_KERNEL: the kernel's; TP_STATUS_USER: a frame for us
    ///     __u32 tp_len;              //  4  the frame's length on the wire
    ///     __u32 tp_snaplen;          //  8  the bytes of it in the slot
    ///     __u16 tp_mac;              // 12  offset of the Ethernet header from the slot's start
    ///     __u16 tp_net;              // 14
    ///     __u32 tp_sec, tp_nsec;     // 16
    ///     __u16 tp_vlan_tci, tp_vlan_tpid; __u8 tp_padding[4]; // 24
    /// };                             // then a struct sockaddr_ll, then the frame at tp_mac
    /// struct tpacket_req { unsigned int tp_block_size, tp_block_nr, tp_frame_size, tp_frame_nr; }; // 16 bytes
    /// </code>
    /// </summary>
    internal static partial class Packet
    {
        /// <summary>linux/if_packet.h option names: the ring, and the frame header version it uses.</summary>
        internal const int PACKET_RX_RING = 5;
        internal const int PACKET_VERSION = 10;

        /// <summary>linux/if_packet.h enum tpacket_versions: one fixed-size slot per frame, each handed over on its own (no block retire timer, unlike TPACKET_V3).</summary>
        internal const int TPACKET_V2 = 1;

        /// <summary>linux/if_packet.h tp_status: the slot belongs to the kernel / holds a frame for user space.</summary>
        internal const uint TP_STATUS_KERNEL = 0;
        internal const uint TP_STATUS_USER = 1;

        /// <summary>linux/if_packet.h: slots and the headers in them are aligned to this.</summary>
        internal const int TPACKET_ALIGNMENT = 16;

        /// <summary>linux/if_packet.h TPACKET2_HDRLEN: TPACKET_ALIGN(sizeof(struct tpacket2_hdr)) + sizeof(struct sockaddr_ll).</summary>
        internal const int TPACKET2_HDRLEN = 52;

        /// <summary>Offsets in struct tpacket2_hdr.</summary>
        internal const int TpStatusOffset = 0;
        internal const int TpLenOffset = 4;
        internal const int TpSnaplenOffset = 8;
        internal const int TpMacOffset = 12;

        /// <summary>sizeof(struct tpacket2_hdr).</summary>
        internal const int SizeOfTpacket2Hdr = 32;

        /// <summary>sys/mman.h.</summary>
        internal const int PROT_READ = 0x1;
        internal const int PROT_WRITE = 0x2;
        internal const int MAP_SHARED = 0x01;

        /// <summary>linux/if_packet.h struct tpacket_req: the ring's geometry.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal readonly record struct TpacketReq(uint BlockSize, uint BlockCount, uint FrameSize, uint FrameCount);

        /// <summary>mmap(2); returns the address, or MAP_FAILED (-1) with errno set.</summary>
        [LibraryImport(Libc, EntryPoint = "mmap", SetLastError = true)]
        internal static partial nint mmap(nint address, nuint length, int protection, int flags, SafeSocketHandle fd, nint offset);

        /// <summary>munmap(2).</summary>
        [LibraryImport(Libc, EntryPoint = "munmap", SetLastError = true)]
        internal static partial int munmap(nint address, nuint length);
    }
}
