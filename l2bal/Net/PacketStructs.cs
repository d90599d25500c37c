using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using L2Balance.Balancer.Protocol;
using static L2Balance.Balancer.Interop.Packet;

namespace L2Balance.Balancer.Net;

/// <summary>
/// Pure encoders for the C structures AF_PACKET takes (no I/O, unit-tested against a C program):
/// <code>
/// struct sockaddr_ll {            // linux/if_packet.h, 20 bytes
///     unsigned short sll_family;  //  0  AF_PACKET, host order
///     __be16         sll_protocol;//  2  EtherType, network order
///     int            sll_ifindex; //  4
///     unsigned short sll_hatype;  //  8  ARPHRD_*
///     unsigned char  sll_pkttype; // 10  PACKET_HOST ... PACKET_OUTGOING
///     unsigned char  sll_halen;   // 11
///     unsigned char  sll_addr[8]; // 12
/// };
/// struct packet_mreq {            // 16 bytes
///     int            mr_ifindex;  //  0
///     unsigned short mr_type;     //  4  PACKET_MR_*
///     unsigned short mr_alen;     //  6
///     unsigned char  mr_address[8]; // 8
/// };
/// struct ifreq { char ifr_name[16]; union { int ifr_ifindex; struct sockaddr ifr_hwaddr; ... }; } // 40 bytes
/// </code>
/// </summary>
internal static class PacketStructs
{
    /// <summary>sockaddr_ll for bind(2): family, protocol and interface; the rest zero.</summary>
    public static void WriteSockaddrLl(Span<byte> destination, ushort etherType, int interfaceIndex)
    {
        destination = destination[..SizeOfSockaddrLl];
        destination.Clear();
        MemoryMarshal.Write(destination, (ushort)AF_PACKET);
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], etherType);
        MemoryMarshal.Write(destination[4..], interfaceIndex);
    }

    /// <summary>Reads the EtherType, interface index and packet type of a sockaddr_ll.</summary>
    public static (ushort EtherType, int InterfaceIndex, byte PacketType) ReadSockaddrLl(ReadOnlySpan<byte> source)
    {
        source = source[..SizeOfSockaddrLl];
        return (BinaryPrimitives.ReadUInt16BigEndian(source[2..]), MemoryMarshal.Read<int>(source[4..]), source[10]);
    }

    /// <summary>packet_mreq for PACKET_ADD/DROP_MEMBERSHIP of one MAC on one interface.</summary>
    public static void WritePacketMreq(Span<byte> destination, int interfaceIndex, ushort type, MacAddress mac)
    {
        destination = destination[..SizeOfPacketMreq];
        destination.Clear();
        MemoryMarshal.Write(destination, interfaceIndex);
        MemoryMarshal.Write(destination[4..], type);
        MemoryMarshal.Write(destination[6..], (ushort)MacAddress.Length);
        mac.WriteTo(destination[8..]);
    }

    /// <summary>
    /// The geometry of a TPACKET_V2 receive ring (struct tpacket_req) of about
    /// <paramref name="ringBytes"/> whose slots hold whole Ethernet frames of up to
    /// <paramref name="maximumFrameLength"/> bytes. The kernel puts an Ethernet frame at
    /// TPACKET_ALIGN(TPACKET2_HDRLEN + 16) − 14 bytes into its slot (tpacket_rcv: netoff, macoff);
    /// a slot is the power of two that holds that much, so slots tile a block exactly, and a block
    /// is a page or one slot, whichever is larger (each block is one allocation of the kernel).
    /// </summary>
    public static TpacketReq RingGeometry(int maximumFrameLength, int ringBytes, int pageSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maximumFrameLength, EthernetFrame.HeaderLength);
        ArgumentOutOfRangeException.ThrowIfLessThan(pageSize, TPACKET_ALIGNMENT);
        var frameOffset = TpacketAlign(TPACKET2_HDRLEN + 16) - EthernetFrame.HeaderLength;
        var frameSize = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)TpacketAlign(frameOffset + maximumFrameLength));
        var blockSize = Math.Max(pageSize, frameSize);
        var blocks = Math.Max(1, ringBytes / blockSize);
        return new TpacketReq((uint)blockSize, (uint)blocks, (uint)frameSize, (uint)(blocks * (blockSize / frameSize)));
    }

    /// <summary>linux/if_packet.h TPACKET_ALIGN.</summary>
    public static int TpacketAlign(int length) => (length + TPACKET_ALIGNMENT - 1) & ~(TPACKET_ALIGNMENT - 1);

    /// <summary>An ifreq holding only the NUL-terminated interface name.</summary>
    public static void WriteIfreqName(Span<byte> destination, string interfaceName)
    {
        ValidateInterfaceName(interfaceName);
        destination = destination[..SizeOfIfreq];
        destination.Clear();
        Encoding.ASCII.GetBytes(interfaceName, destination);
    }

    /// <summary>Linux interface names: 1..15 bytes of printable ASCII without '/', ':' or whitespace (dev_valid_name).</summary>
    public static void ValidateInterfaceName(string interfaceName)
    {
        ArgumentNullException.ThrowIfNull(interfaceName);
        if (interfaceName.Length is 0 or >= IFNAMSIZ
            || interfaceName is "." or ".."
            || interfaceName.Any(c => c is <= ' ' or > '~' or '/' or ':'))
        {
            throw new ArgumentException($"Not a valid interface name: '{interfaceName}'.", nameof(interfaceName));
        }
    }
}
