using System.Buffers;

namespace L2Balance.Proxy.Protocol;

/// <summary>
/// SOCKS5 TCP-control messages of RFC 1928: greeting, method selection, request and reply.
/// Pure span codec (docs/conventions.md §5): no I/O, no DNS, no logging. Every TryParse checks each field as soon
/// as its byte is available, so a wrong version is refused after one byte; on Ok, <c>consumed</c>
/// is the message length, otherwise 0, and <c>reason</c> is meaningful only for Invalid.
/// </summary>
public static class Socks5Codec
{
    /// <summary>VER of every SOCKS5 message.</summary>
    public const byte Version = 5;

    /*
     * Greeting (RFC 1928 section 3), client to server:
     *
     *   +----+----------+----------+
     *   |VER | NMETHODS | METHODS  |
     *   +----+----------+----------+
     *   | 1  |    1     | 1 to 255 |
     *   +----+----------+----------+
     */

    /// <summary>Parses a client greeting. NMETHODS 0 is Invalid(<see cref="SocksRejection.NoMethods"/>).</summary>
    /// <remarks>The method bytes are copied (at most 255): the caller's buffer is released after parsing.</remarks>
    public static ParseStatus TryParseGreeting(in ReadOnlySequence<byte> input, out Socks5Greeting greeting, out int consumed, out SocksRejection reason)
    {
        greeting = default;
        consumed = 0;
        var reader = new SequenceReader<byte>(input);
        if (!TryReadVersion(ref reader, out reason, out ParseStatus status))
        {
            return status;
        }

        if (!reader.TryRead(out byte count))
        {
            return ParseStatus.NeedMoreData;
        }

        if (count == 0)
        {
            reason = SocksRejection.NoMethods;
            return ParseStatus.Invalid;
        }

        if (reader.Remaining < count)
        {
            return ParseStatus.NeedMoreData;
        }

        var methods = new byte[count];
        reader.TryCopyTo(methods);
        reader.Advance(count);
        greeting = new Socks5Greeting(methods);
        consumed = (int)reader.Consumed;
        return ParseStatus.Ok;
    }

    /// <summary>Writes a greeting offering <paramref name="methods"/> (1 to 255 method bytes).</summary>
    public static void WriteGreeting(ReadOnlySpan<byte> methods, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (methods.Length is 0 or > byte.MaxValue)
        {
            throw new ArgumentException($"A SOCKS5 greeting carries 1 to 255 methods, not {methods.Length}.", nameof(methods));
        }

        int length = 2 + methods.Length;
        Span<byte> span = output.GetSpan(length);
        span[0] = Version;
        span[1] = (byte)methods.Length;
        methods.CopyTo(span[2..]);
        output.Advance(length);
    }

    /*
     * Method selection (RFC 1928 section 3), server to client:
     *
     *   +----+--------+
     *   |VER | METHOD |
     *   +----+--------+
     *   | 1  |   1    |
     *   +----+--------+
     *
     * Any METHOD byte is well-formed (X'03'..X'7F' IANA, X'80'..X'FE' private, X'FF' none acceptable).
     */

    /// <summary>Parses the server's method selection; every METHOD value is accepted as is.</summary>
    public static ParseStatus TryParseMethodSelection(in ReadOnlySequence<byte> input, out AuthMethod method, out int consumed, out SocksRejection reason)
    {
        method = default;
        consumed = 0;
        var reader = new SequenceReader<byte>(input);
        if (!TryReadVersion(ref reader, out reason, out ParseStatus status))
        {
            return status;
        }

        if (!reader.TryRead(out byte value))
        {
            return ParseStatus.NeedMoreData;
        }

        method = (AuthMethod)value;
        consumed = 2;
        return ParseStatus.Ok;
    }

    /// <summary>Writes a method selection.</summary>
    public static void WriteMethodSelection(AuthMethod method, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        Span<byte> span = output.GetSpan(2);
        span[0] = Version;
        span[1] = (byte)method;
        output.Advance(2);
    }

    /*
     * Request (RFC 1928 section 4), client to server:
     *
     *   +----+-----+-------+------+----------+----------+
     *   |VER | CMD |  RSV  | ATYP | DST.ADDR | DST.PORT |
     *   +----+-----+-------+------+----------+----------+
     *   | 1  |  1  | X'00' |  1   | Variable |    2     |
     *   +----+-----+-------+------+----------+----------+
     */

    /// <summary>
    /// Parses a request. Checks run in wire order (VER, CMD, RSV, ATYP) so that the server can answer
    /// <see cref="SocksRejection.BadCommand"/> with <see cref="ReplyCode.CommandNotSupported"/> and
    /// <see cref="SocksRejection.BadAddressType"/> with <see cref="ReplyCode.AddressTypeNotSupported"/>
    /// (RFC 1928 section 6) without waiting for an address it cannot size.
    /// </summary>
    public static ParseStatus TryParseRequest(in ReadOnlySequence<byte> input, out Socks5Request request, out int consumed, out SocksRejection reason)
    {
        request = default;
        consumed = 0;
        var reader = new SequenceReader<byte>(input);
        if (!TryReadVersion(ref reader, out reason, out ParseStatus status))
        {
            return status;
        }

        if (!reader.TryRead(out byte command))
        {
            return ParseStatus.NeedMoreData;
        }

        if (command is not ((byte)SocksCommand.Connect or (byte)SocksCommand.Bind or (byte)SocksCommand.UdpAssociate))
        {
            reason = SocksRejection.BadCommand;
            return ParseStatus.Invalid;
        }

        status = TryReadReservedAndEndpoint(ref reader, out SocksEndpoint destination, out reason);
        if (status != ParseStatus.Ok)
        {
            return status;
        }

        request = new Socks5Request((SocksCommand)command, destination);
        consumed = (int)reader.Consumed;
        return ParseStatus.Ok;
    }

    /// <summary>Writes a request; throws <see cref="ArgumentException"/> for a destination that cannot be encoded.</summary>
    public static void WriteRequest(in Socks5Request request, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (request.Command is not (SocksCommand.Connect or SocksCommand.Bind or SocksCommand.UdpAssociate))
        {
            throw new ArgumentException($"Command {request.Command} is not a SOCKS5 command.", nameof(request));
        }

        WriteHeaderAndEndpoint((byte)request.Command, request.Destination, output);
    }

    /*
     * Reply (RFC 1928 section 6), server to client:
     *
     *   +----+-----+-------+------+----------+----------+
     *   |VER | REP |  RSV  | ATYP | BND.ADDR | BND.PORT |
     *   +----+-----+-------+------+----------+----------+
     *   | 1  |  1  | X'00' |  1   | Variable |    2     |
     *   +----+-----+-------+------+----------+----------+
     */

    /// <summary>Parses a reply. REP above X'08' is Invalid(<see cref="SocksRejection.BadStatus"/>).</summary>
    public static ParseStatus TryParseReply(in ReadOnlySequence<byte> input, out Socks5Reply reply, out int consumed, out SocksRejection reason)
    {
        reply = default;
        consumed = 0;
        var reader = new SequenceReader<byte>(input);
        if (!TryReadVersion(ref reader, out reason, out ParseStatus status))
        {
            return status;
        }

        if (!reader.TryRead(out byte code))
        {
            return ParseStatus.NeedMoreData;
        }

        if (code > (byte)ReplyCode.AddressTypeNotSupported)
        {
            reason = SocksRejection.BadStatus;
            return ParseStatus.Invalid;
        }

        status = TryReadReservedAndEndpoint(ref reader, out SocksEndpoint bound, out reason);
        if (status != ParseStatus.Ok)
        {
            return status;
        }

        reply = new Socks5Reply((ReplyCode)code, bound);
        consumed = (int)reader.Consumed;
        return ParseStatus.Ok;
    }

    /// <summary>
    /// Writes a reply. A failure reply still needs a bound endpoint: RFC 1928 gives none, and
    /// servers send 0.0.0.0:0 (<c>SocksEndpoint.FromAddress(IPAddress.Any, 0)</c>).
    /// </summary>
    public static void WriteReply(in Socks5Reply reply, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if ((byte)reply.Reply > (byte)ReplyCode.AddressTypeNotSupported)
        {
            throw new ArgumentException($"Reply code {reply.Reply} is not defined by RFC 1928.", nameof(reply));
        }

        WriteHeaderAndEndpoint((byte)reply.Reply, reply.Bound, output);
    }

    /// <summary>Reads VER; false (with the status to return) when it is missing or not 5.</summary>
    private static bool TryReadVersion(ref SequenceReader<byte> reader, out SocksRejection reason, out ParseStatus status)
    {
        reason = SocksRejection.None;
        if (!reader.TryRead(out byte version))
        {
            status = ParseStatus.NeedMoreData;
            return false;
        }

        if (version != Version)
        {
            reason = SocksRejection.BadVersion;
            status = ParseStatus.Invalid;
            return false;
        }

        status = ParseStatus.Ok;
        return true;
    }

    private static ParseStatus TryReadReservedAndEndpoint(ref SequenceReader<byte> reader, out SocksEndpoint endpoint, out SocksRejection reason)
    {
        endpoint = default;
        reason = SocksRejection.None;
        if (!reader.TryRead(out byte reserved))
        {
            return ParseStatus.NeedMoreData;
        }

        if (reserved != 0)
        {
            reason = SocksRejection.BadReservedByte;
            return ParseStatus.Invalid;
        }

        return SocksAddressCodec.TryRead(ref reader, out endpoint, out reason);
    }

    private static void WriteHeaderAndEndpoint(byte second, in SocksEndpoint endpoint, IBufferWriter<byte> output)
    {
        int length = 3 + SocksAddressCodec.GetLength(endpoint);
        Span<byte> span = output.GetSpan(length);
        span[0] = Version;
        span[1] = second;
        span[2] = 0;
        SocksAddressCodec.Write(endpoint, span[3..]);
        output.Advance(length);
    }
}
