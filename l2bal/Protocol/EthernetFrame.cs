using System.Buffers.Binary;

namespace L2Balance.Balancer.Protocol;

/// <summary>Why a frame was not accepted as an untagged Ethernet II frame.</summary>
internal enum EthernetRejection
{
    /// <summary>Accepted.</summary>
    None = 0,

    /// <summary>Shorter than the 14-byte header.</summary>
    Truncated,

    /// <summary>An 802.1Q / 802.1ad tag follows the addresses; the daemon serves one untagged segment.</summary>
    VlanTagged,

    /// <summary>Type field &lt; 0x0600: an IEEE 802.3 length field (LLC/SNAP), not an Ethernet II type.</summary>
    NotEthernetII,
}

/// <summary>An Ethernet II header.</summary>
internal readonly record struct EthernetHeader(MacAddress Destination, MacAddress Source, ushort EtherType);

/// <summary>
/// Span codec for the Ethernet II header (IEEE 802.3 clause 3.2.6, the DIX type interpretation):
/// <code>
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                  destination MAC (6 octets)                   |
/// +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                               |                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+       source MAC (6 octets)   +
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          EtherType            |   payload ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// </code>
/// Frames arrive whole from an AF_PACKET socket (no FCS), so there is no "need more data":
/// a short frame is simply invalid.
/// </summary>
internal static class EthernetFrame
{
    /// <summary>Destination + source + type.</summary>
    public const int HeaderLength = 14;

    /// <summary>Minimum frame length without FCS (64 - 4); shorter frames are padded by the sender.</summary>
    public const int MinimumLength = 60;

    public const ushort EtherTypeIPv4 = 0x0800;
    public const ushort EtherTypeArp = 0x0806;
    public const ushort EtherTypeVlan = 0x8100;
    public const ushort EtherTypeQinQ = 0x88A8;

    /// <summary>Parses the header of a whole frame; the payload starts at <see cref="HeaderLength"/>.</summary>
    public static bool TryParse(ReadOnlySpan<byte> frame, out EthernetHeader header, out EthernetRejection rejection)
    {
        header = default;
        if (frame.Length < HeaderLength)
        {
            rejection = EthernetRejection.Truncated;
            return false;
        }

        ushort type = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
        if (type is EtherTypeVlan or EtherTypeQinQ)
        {
            rejection = EthernetRejection.VlanTagged;
            return false;
        }

        if (type < 0x0600)
        {
            rejection = EthernetRejection.NotEthernetII;
            return false;
        }

        header = new EthernetHeader(MacAddress.Read(frame), MacAddress.Read(frame[6..]), type);
        rejection = EthernetRejection.None;
        return true;
    }

    /// <summary>Writes the 14-byte header; returns <see cref="HeaderLength"/>.</summary>
    public static int Write(in EthernetHeader header, Span<byte> destination)
    {
        if (destination.Length < HeaderLength)
        {
            throw new ArgumentException("Destination too small for an Ethernet header.", nameof(destination));
        }

        header.Destination.WriteTo(destination);
        header.Source.WriteTo(destination[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(destination[12..], header.EtherType);
        return HeaderLength;
    }
}
