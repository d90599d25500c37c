using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Unicode;

namespace L2Balance.Proxy.Protocol;

/// <summary>
/// SOCKS4 and SOCKS4a requests and replies (Ying-Da Lee, "SOCKS: A protocol for TCP proxy across
/// firewalls", and "SOCKS 4A: A Simple Extension to SOCKS 4 Protocol"). Pure span codec (docs/conventions.md §5).
/// Only CONNECT (1) and BIND (2) exist; any other CD is Invalid(<see cref="SocksRejection.BadCommand"/>).
/// </summary>
public static class Socks4Codec
{
    /// <summary>VN of a request.</summary>
    public const byte Version = 4;

    /// <summary>VN of a reply: "the version of the reply code and should be 0" (SOCKS4 protocol).</summary>
    public const byte ReplyVersion = 0;

    /// <summary>Longest USERID or SOCKS4a hostname before its NUL. The protocol sets no bound; 255
    /// matches SOCKS5 names and stops a client from making us buffer an unterminated field.</summary>
    public const int MaxFieldLength = 255;

    private const int FixedLength = 8; // VN, CD, DSTPORT, DSTIP

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /*
     * Request (SOCKS4), client to server:
     *
     *               +----+----+----+----+----+----+----+----+----+----+....+----+
     *               | VN | CD | DSTPORT |      DSTIP        | USERID       |NULL|
     *               +----+----+----+----+----+----+----+----+----+----+....+----+
     *   # of bytes:   1    1      2              4           variable       1
     *
     * SOCKS4a: DSTIP 0.0.0.x with x != 0 (an address no host can have) means the client could not
     * resolve the name, and sends it after the USERID's NULL:
     *
     *   +----+----+----+----+----+----+----+----+----+....+----+----+....+----+
     *   | VN | CD | DSTPORT |  0 . 0 . 0 . x    | USERID  |NULL| HOSTNAME|NULL|
     *   +----+----+----+----+----+----+----+----+----+....+----+----+....+----+
     */

    /// <summary>
    /// Parses a SOCKS4 or SOCKS4a request. USERID (UTF-8, may be empty) and hostname (printable
    /// ASCII, 1 to 255) must each end with NUL within 256 bytes, else Invalid(<see cref="SocksRejection.TooLong"/>).
    /// </summary>
    public static ParseStatus TryParseRequest(in ReadOnlySequence<byte> input, out Socks4Request request, out int consumed, out SocksRejection reason)
    {
        request = default;
        consumed = 0;
        reason = SocksRejection.None;
        var reader = new SequenceReader<byte>(input);
        if (!reader.TryRead(out byte version))
        {
            return ParseStatus.NeedMoreData;
        }

        if (version != Version)
        {
            reason = SocksRejection.BadVersion;
            return ParseStatus.Invalid;
        }

        if (!reader.TryRead(out byte command))
        {
            return ParseStatus.NeedMoreData;
        }

        if (command is not ((byte)SocksCommand.Connect or (byte)SocksCommand.Bind))
        {
            reason = SocksRejection.BadCommand;
            return ParseStatus.Invalid;
        }

        Span<byte> fixedPart = stackalloc byte[FixedLength - 2];
        if (!reader.TryCopyTo(fixedPart))
        {
            return ParseStatus.NeedMoreData;
        }

        reader.Advance(fixedPart.Length);
        ushort port = BinaryPrimitives.ReadUInt16BigEndian(fixedPart);
        ReadOnlySpan<byte> ip = fixedPart[2..];

        Span<byte> field = stackalloc byte[MaxFieldLength + 1];
        ParseStatus status = TryReadNulTerminated(ref reader, field, out int length, out reason);
        if (status != ParseStatus.Ok)
        {
            return status;
        }

        if (!Utf8.IsValid(field[..length]))
        {
            reason = SocksRejection.BadCredentialsEncoding;
            return ParseStatus.Invalid;
        }

        string userId = length == 0 ? string.Empty : Encoding.UTF8.GetString(field[..length]);
        SocksEndpoint destination;
        if (IsSocks4aMarker(ip))
        {
            status = TryReadNulTerminated(ref reader, field, out length, out reason);
            if (status != ParseStatus.Ok)
            {
                return status;
            }

            reason = SocksAddressCodec.ValidateHost(field[..length]);
            if (reason != SocksRejection.None)
            {
                return ParseStatus.Invalid;
            }

            destination = SocksEndpoint.FromHost(SocksAddressCodec.DecodeHost(field[..length]), port);
        }
        else
        {
            destination = SocksEndpoint.FromAddress(new IPAddress(ip), port);
        }

        request = new Socks4Request((SocksCommand)command, destination, userId);
        consumed = (int)reader.Consumed;
        return ParseStatus.Ok;
    }

    /// <summary>
    /// Writes a request: an IPv4 destination as SOCKS4, a host name as SOCKS4a (DSTIP 0.0.0.1).
    /// Throws <see cref="ArgumentException"/> for an IPv6 destination (SOCKS4 has no way to carry
    /// one), a command other than CONNECT/BIND, or a USERID with NUL or over 255 UTF-8 bytes.
    /// </summary>
    public static void WriteRequest(in Socks4Request request, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(request.UserId, nameof(request));
        if (request.Command is not (SocksCommand.Connect or SocksCommand.Bind))
        {
            throw new ArgumentException($"Command {request.Command} does not exist in SOCKS4.", nameof(request));
        }

        SocksEndpoint destination = request.Destination;
        int hostLength = destination.Host is { } host ? SocksAddressCodec.CheckHost(host, nameof(request)) + 1 : 0;
        if (hostLength == 0 && destination.Address?.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException($"SOCKS4 carries only IPv4 addresses or (4a) host names, not '{destination.Address}'.", nameof(request));
        }

        int userIdLength = StrictUtf8.GetByteCount(request.UserId);
        if (userIdLength > MaxFieldLength || request.UserId.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"A SOCKS4 USERID must be at most {MaxFieldLength} UTF-8 bytes without NUL.", nameof(request));
        }

        int length = FixedLength + userIdLength + 1 + hostLength;
        Span<byte> span = output.GetSpan(length);
        span[0] = Version;
        span[1] = (byte)request.Command;
        BinaryPrimitives.WriteUInt16BigEndian(span[2..], destination.Port);
        if (destination.Host is { } name)
        {
            span.Slice(4, 4).Clear();
            span[7] = 1;
            int hostStart = FixedLength + userIdLength + 1;
            Encoding.ASCII.GetBytes(name, span[hostStart..]);
            span[hostStart + name.Length] = 0;
        }
        else
        {
            destination.Address!.TryWriteBytes(span.Slice(4, 4), out _);
        }

        StrictUtf8.GetBytes(request.UserId, span.Slice(FixedLength, userIdLength));
        span[FixedLength + userIdLength] = 0;
        output.Advance(length);
    }

    /*
     * Reply (SOCKS4), server to client:
     *
     *               +----+----+----+----+----+----+----+----+
     *               | VN | CD | DSTPORT |      DSTIP        |
     *               +----+----+----+----+----+----+----+----+
     *   # of bytes:   1    1      2              4
     *
     * VN is 0. CD: 90 granted, 91 rejected or failed, 92 and 93 identd failures.
     */

    /// <summary>Parses a reply. VN != 0 → BadVersion; CD outside 90..93 → BadStatus.</summary>
    public static ParseStatus TryParseReply(in ReadOnlySequence<byte> input, out Socks4Reply reply, out int consumed, out SocksRejection reason)
    {
        reply = default;
        consumed = 0;
        reason = SocksRejection.None;
        var reader = new SequenceReader<byte>(input);
        if (!reader.TryRead(out byte version))
        {
            return ParseStatus.NeedMoreData;
        }

        if (version != ReplyVersion)
        {
            reason = SocksRejection.BadVersion;
            return ParseStatus.Invalid;
        }

        if (!reader.TryRead(out byte code))
        {
            return ParseStatus.NeedMoreData;
        }

        if (code is < (byte)Socks4ReplyCode.Granted or > (byte)Socks4ReplyCode.IdentdMismatch)
        {
            reason = SocksRejection.BadStatus;
            return ParseStatus.Invalid;
        }

        Span<byte> rest = stackalloc byte[FixedLength - 2];
        if (!reader.TryCopyTo(rest))
        {
            return ParseStatus.NeedMoreData;
        }

        reply = new Socks4Reply((Socks4ReplyCode)code, new IPAddress(rest[2..]), BinaryPrimitives.ReadUInt16BigEndian(rest));
        consumed = FixedLength;
        return ParseStatus.Ok;
    }

    /// <summary>
    /// Writes a reply. An IPv4-mapped IPv6 address is written as IPv4; any other IPv6 address throws
    /// <see cref="ArgumentException"/>. Servers commonly send 0.0.0.0:0 when the fields mean nothing.
    /// </summary>
    public static void WriteReply(in Socks4Reply reply, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(reply.Address, nameof(reply));
        IPAddress address = reply.Address.IsIPv4MappedToIPv6 ? reply.Address.MapToIPv4() : reply.Address;
        if (address.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException($"A SOCKS4 reply carries only IPv4, not '{address}'.", nameof(reply));
        }

        if (reply.Code is < Socks4ReplyCode.Granted or > Socks4ReplyCode.IdentdMismatch)
        {
            throw new ArgumentException($"Reply code {reply.Code} is not a SOCKS4 reply code.", nameof(reply));
        }

        Span<byte> span = output.GetSpan(FixedLength);
        span[0] = ReplyVersion;
        span[1] = (byte)reply.Code;
        BinaryPrimitives.WriteUInt16BigEndian(span[2..], reply.Port);
        address.TryWriteBytes(span.Slice(4, 4), out _);
        output.Advance(FixedLength);
    }

    /// <summary>SOCKS4a: DSTIP 0.0.0.x with x != 0 announces a host name after the USERID.</summary>
    private static bool IsSocks4aMarker(ReadOnlySpan<byte> ip) => ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] != 0;

    /// <summary>
    /// Reads a field ending in NUL, looking at no more than 256 bytes: Ok with the field in
    /// <c>buffer[..length]</c> and the NUL consumed; TooLong when 256 bytes hold no NUL.
    /// </summary>
    private static ParseStatus TryReadNulTerminated(ref SequenceReader<byte> reader, scoped Span<byte> buffer, out int length, out SocksRejection reason)
    {
        length = 0;
        reason = SocksRejection.None;
        int available = (int)Math.Min(reader.Remaining, buffer.Length);
        reader.TryCopyTo(buffer[..available]);
        int nul = buffer[..available].IndexOf((byte)0);
        if (nul >= 0)
        {
            length = nul;
            reader.Advance(nul + 1);
            return ParseStatus.Ok;
        }

        if (available == buffer.Length)
        {
            reason = SocksRejection.TooLong;
            return ParseStatus.Invalid;
        }

        return ParseStatus.NeedMoreData;
    }
}
