using System.Buffers.Binary;

namespace L2Balance.Common.Net;

/// <summary>
/// The Internet checksum (RFC 1071) over an upper-layer pseudo-header and message, as TCP (RFC 9293 section 3.1)
/// and ICMPv6 (RFC 4443 section 2.3, RFC 8200 section 8.1) compute it. Shared by l2bal's neighbour discovery and
/// l2proxy's acknowledgements after a migration. Pure.
/// </summary>
public static class InternetChecksum
{
    /// <summary>
    /// The checksum of <paramref name="message"/> behind the pseudo-header of <paramref name="source"/> and
    /// <paramref name="destination"/> (4 bytes each for IPv4, 16 for IPv6), its length and <paramref name="protocol"/>:
    /// the value to store when the message's checksum field is zero, 0 when a received message's field is right.
    /// </summary>
    public static ushort Compute(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol, ReadOnlySpan<byte> message)
    {
        // The pseudo-header's length and protocol words sum the same whatever their layout (IPv4: zero, protocol,
        // 16-bit length; IPv6: 32-bit length, three zero bytes, next header).
        ulong sum = Sum(source) + Sum(destination) + (uint)message.Length + protocol + Sum(message);
        while (sum >> 16 != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        return (ushort)~sum;
    }

    private static ulong Sum(ReadOnlySpan<byte> data)
    {
        ulong sum = 0;
        var i = 0;
        for (; i + 1 < data.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        }

        if (i < data.Length)
        {
            sum += (ulong)data[i] << 8;
        }

        return sum;
    }
}
