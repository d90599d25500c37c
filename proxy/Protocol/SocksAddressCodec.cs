using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace L2Balance.Proxy.Protocol;

/// <summary>
/// The ATYP / ADDR / PORT triple shared by SOCKS5 requests, replies and UDP headers
/// (RFC 1928 sections 4, 5, 6 and 7), plus the host-name rules shared with SOCKS4a.
/// </summary>
/// <remarks>
/// <code>
/// +------+----------+------+
/// | ATYP |   ADDR   | PORT |
/// +------+----------+------+
/// |  1   | Variable |  2   |
/// +------+----------+------+
/// ATYP X'01': 4 bytes IPv4; X'03': 1 length byte then that many name bytes, no NUL;
/// X'04': 16 bytes IPv6. PORT is in network byte order.
/// </code>
/// </remarks>
internal static class SocksAddressCodec
{
    /// <summary>Longest host name on the wire: one length byte (RFC 1928) or 255 bytes before NUL (SOCKS4a).</summary>
    public const int MaxHostLength = 255;

    /// <summary>Longest encoding: ATYP + length byte + 255 name bytes + PORT.</summary>
    public const int MaxEncodedLength = 1 + 1 + MaxHostLength + 2;

    /// <summary>
    /// Parses ATYP/ADDR/PORT at the start of <paramref name="input"/>. NeedMoreData when the
    /// span ends inside the triple; <paramref name="length"/> is meaningful only on Ok.
    /// </summary>
    public static ParseStatus TryParse(ReadOnlySpan<byte> input, out SocksEndpoint endpoint, out int length, out SocksRejection reason)
    {
        endpoint = default;
        length = 0;
        reason = SocksRejection.None;
        if (input.IsEmpty)
        {
            return ParseStatus.NeedMoreData;
        }

        int addressLength;
        int addressStart = 1;
        switch ((SocksAddressType)input[0])
        {
            case SocksAddressType.IPv4:
                addressLength = 4;
                break;
            case SocksAddressType.IPv6:
                addressLength = 16;
                break;
            case SocksAddressType.DomainName:
                if (input.Length < 2)
                {
                    return ParseStatus.NeedMoreData;
                }

                addressLength = input[1];
                addressStart = 2;
                if (addressLength == 0)
                {
                    reason = SocksRejection.EmptyDomainName;
                    return ParseStatus.Invalid;
                }

                break;
            default:
                reason = SocksRejection.BadAddressType;
                return ParseStatus.Invalid;
        }

        int total = addressStart + addressLength + 2;
        if (input.Length < total)
        {
            return ParseStatus.NeedMoreData;
        }

        ReadOnlySpan<byte> address = input.Slice(addressStart, addressLength);
        ushort port = BinaryPrimitives.ReadUInt16BigEndian(input.Slice(addressStart + addressLength));
        if (input[0] == (byte)SocksAddressType.DomainName)
        {
            reason = ValidateHost(address);
            if (reason != SocksRejection.None)
            {
                return ParseStatus.Invalid;
            }

            endpoint = SocksEndpoint.FromHost(DecodeHost(address), port);
        }
        else
        {
            // FromAddress turns an IPv4-mapped IPv6 address into IPv4, so one destination has one form.
            endpoint = SocksEndpoint.FromAddress(new IPAddress(address), port);
        }

        length = total;
        return ParseStatus.Ok;
    }

    /// <summary>
    /// <see cref="TryParse(ReadOnlySpan{byte}, out SocksEndpoint, out int, out SocksRejection)"/> over a
    /// possibly multi-segment reader; advances the reader only on Ok.
    /// </summary>
    public static ParseStatus TryRead(ref SequenceReader<byte> reader, out SocksEndpoint endpoint, out SocksRejection reason)
    {
        // The triple is at most 259 bytes: parse the unread span in place when it holds all we
        // have or the longest triple, else copy that much into a stack buffer.
        Span<byte> copy = stackalloc byte[MaxEncodedLength];
        scoped ReadOnlySpan<byte> unread = reader.UnreadSpan;
        if (unread.Length < MaxEncodedLength && reader.Remaining > unread.Length)
        {
            int available = (int)Math.Min(reader.Remaining, MaxEncodedLength);
            reader.TryCopyTo(copy[..available]);
            unread = copy[..available];
        }

        ParseStatus status = TryParse(unread, out endpoint, out int length, out reason);
        if (status == ParseStatus.Ok)
        {
            reader.Advance(length);
        }

        return status;
    }

    /// <summary>Bytes <see cref="Write(in SocksEndpoint, Span{byte})"/> produces for <paramref name="endpoint"/>; throws if it cannot be encoded.</summary>
    public static int GetLength(in SocksEndpoint endpoint) => endpoint.Host is { } host
        ? 1 + 1 + CheckHost(host, nameof(endpoint)) + 2
        : 1 + GetAddressLength(endpoint.Address, nameof(endpoint)) + 2;

    /// <summary>Writes ATYP/ADDR/PORT; <paramref name="destination"/> must hold <see cref="GetLength"/> bytes.</summary>
    public static int Write(in SocksEndpoint endpoint, Span<byte> destination)
    {
        int length = GetLength(endpoint);
        if (destination.Length < length)
        {
            throw new ArgumentException($"The destination needs {length} bytes for {endpoint}.", nameof(destination));
        }

        destination[0] = (byte)endpoint.AddressType;
        int offset = 1;
        if (endpoint.Host is { } host)
        {
            destination[offset++] = (byte)host.Length;
            offset += Encoding.ASCII.GetBytes(host, destination[offset..]);
        }
        else
        {
            endpoint.Address!.TryWriteBytes(destination[offset..], out int written);
            offset += written;
        }

        BinaryPrimitives.WriteUInt16BigEndian(destination[offset..], endpoint.Port);
        return offset + 2;
    }

    /// <summary>Writes the endpoint to <paramref name="output"/> (GetSpan/Advance, no allocation).</summary>
    public static void Write(in SocksEndpoint endpoint, IBufferWriter<byte> output)
    {
        int length = GetLength(endpoint);
        Write(endpoint, output.GetSpan(length));
        output.Advance(length);
    }

    /// <summary>
    /// Checks host-name bytes: 1 to 255 bytes of printable ASCII (0x21..0x7E). IP literals are kept
    /// as names; the server decides how to resolve them. Returns <see cref="SocksRejection.None"/> when valid.
    /// </summary>
    public static SocksRejection ValidateHost(ReadOnlySpan<byte> name)
    {
        if (name.IsEmpty)
        {
            return SocksRejection.EmptyDomainName;
        }

        if (name.Length > MaxHostLength)
        {
            return SocksRejection.TooLong;
        }

        // Control bytes, space and DEL cannot be in a DNS name and would forge log lines;
        // bytes above 0x7E are not ASCII (an IDN must arrive as punycode).
        return name.ContainsAnyExceptInRange((byte)0x21, (byte)0x7E) ? SocksRejection.BadDomainName : SocksRejection.None;
    }

    /// <summary>Decodes host bytes already accepted by <see cref="ValidateHost"/>.</summary>
    public static string DecodeHost(ReadOnlySpan<byte> name) => Encoding.ASCII.GetString(name);

    /// <summary>Returns the wire length of a host name, or throws if it could not be parsed back.</summary>
    public static int CheckHost(string host, string paramName)
    {
        if (host.Length is 0 or > MaxHostLength || host.AsSpan().ContainsAnyExceptInRange('\x21', '\x7E'))
        {
            throw new ArgumentException($"A SOCKS host name must be 1 to {MaxHostLength} printable ASCII characters: '{host}'.", paramName);
        }

        return host.Length;
    }

    private static int GetAddressLength(IPAddress? address, string paramName) => address?.AddressFamily switch
    {
        AddressFamily.InterNetwork => 4,
        AddressFamily.InterNetworkV6 => 16,
        null => throw new ArgumentException("The endpoint has neither an address nor a host (default SocksEndpoint).", paramName),
        _ => throw new ArgumentException($"Address family {address.AddressFamily} cannot be sent over SOCKS.", paramName),
    };
}
