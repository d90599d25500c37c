namespace L2Balance.Proxy.Protocol;

/// <summary>
/// The header of a SOCKS5 UDP datagram (RFC 1928 section 7). Pure span codec (docs/conventions.md §5). A datagram
/// arrives whole, so a short one is Invalid(<see cref="SocksRejection.Truncated"/>), never NeedMoreData.
/// </summary>
/// <remarks>
/// <code>
/// +----+------+------+----------+----------+----------+
/// |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
/// +----+------+------+----------+----------+----------+
/// | 2  |  1   |  1   | Variable |    2     | Variable |
/// +----+------+------+----------+----------+----------+
/// RSV X'0000'; FRAG X'00' for a standalone datagram, else a fragment number.
/// </code>
/// </remarks>
public static class UdpHeaderCodec
{
    private const int PrefixLength = 3; // RSV, FRAG

    /// <summary>
    /// Parses the header at the start of <paramref name="datagram"/>; the payload starts at
    /// <paramref name="headerLength"/> (0 unless Ok). FRAG is reported, not rejected.
    /// </summary>
    public static ParseStatus TryParse(ReadOnlySpan<byte> datagram, out UdpHeader header, out int headerLength, out SocksRejection reason)
    {
        header = default;
        headerLength = 0;
        reason = SocksRejection.None;
        if (datagram.Length < PrefixLength)
        {
            reason = SocksRejection.Truncated;
            return ParseStatus.Invalid;
        }

        if (datagram[0] != 0 || datagram[1] != 0)
        {
            reason = SocksRejection.BadReservedByte;
            return ParseStatus.Invalid;
        }

        ParseStatus status = SocksAddressCodec.TryParse(datagram[PrefixLength..], out SocksEndpoint destination, out int length, out reason);
        if (status == ParseStatus.NeedMoreData)
        {
            reason = SocksRejection.Truncated;
            return ParseStatus.Invalid;
        }

        if (status == ParseStatus.Ok)
        {
            header = new UdpHeader(datagram[2], destination);
            headerLength = PrefixLength + length;
        }

        return status;
    }

    /// <summary>Header bytes for <paramref name="destination"/>: 10 for IPv4, 22 for IPv6, 7 + name length for a name.</summary>
    public static int GetLength(in SocksEndpoint destination) => PrefixLength + SocksAddressCodec.GetLength(destination);

    /// <summary>
    /// Writes the header at the start of <paramref name="destination"/> and returns its length;
    /// throws <see cref="ArgumentException"/> when the span is shorter than <see cref="GetLength"/>.
    /// </summary>
    public static int Write(in UdpHeader header, Span<byte> destination)
    {
        int length = GetLength(header.Destination);
        if (destination.Length < length)
        {
            throw new ArgumentException($"A UDP header for {header.Destination} needs {length} bytes, not {destination.Length}.", nameof(destination));
        }

        destination[0] = 0;
        destination[1] = 0;
        destination[2] = header.Fragment;
        return PrefixLength + SocksAddressCodec.Write(header.Destination, destination[PrefixLength..]);
    }
}
