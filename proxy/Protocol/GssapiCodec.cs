using System.Buffers;
using System.Buffers.Binary;

namespace L2Balance.Proxy.Protocol;

/// <summary>MTYP of an RFC 1961 message.</summary>
public enum GssapiMessageType : byte
{
    /// <summary>A context establishment token (RFC 1961 section 3.3).</summary>
    Authentication = 0x01,
    /// <summary>The protection-level subnegotiation (RFC 1961 section 4.3).</summary>
    ProtectionLevel = 0x02,
    /// <summary>Per-message protected data: the request, the reply and the relayed data (RFC 1961 section 5).</summary>
    Encapsulated = 0x03,
    /// <summary>The failure message X'01' X'FF': no LEN, no token (RFC 1961 section 3.4).</summary>
    Abort = 0xFF,
}

/// <summary>
/// The protection levels of RFC 1961 section 4 as Dante numbers them (<c>gssapi.enctype</c>): 0 clear, which
/// the RFC lacks but curl and Dante send (no per-message protection after the subnegotiation), 1 integrity,
/// 2 confidentiality, 3 per-message (the sender picks integrity or confidentiality per message).
/// </summary>
public enum GssapiProtection : byte
{
    Clear = 0,
    Integrity = 1,
    Confidentiality = 2,
    PerMessage = 3,
}

/// <summary>One RFC 1961 message; equal when type and token bytes are equal.</summary>
public readonly struct GssapiMessage : IEquatable<GssapiMessage>
{
    public GssapiMessage(GssapiMessageType type, ReadOnlyMemory<byte> token)
    {
        Type = type;
        Token = token;
    }

    public GssapiMessageType Type { get; }

    public ReadOnlyMemory<byte> Token { get; }

    public bool Equals(GssapiMessage other) => Type == other.Type && Token.Span.SequenceEqual(other.Token.Span);

    public override bool Equals(object? obj) => obj is GssapiMessage other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(Type, Token.Length);

    public static bool operator ==(GssapiMessage left, GssapiMessage right) => left.Equals(right);

    public static bool operator !=(GssapiMessage left, GssapiMessage right) => !left.Equals(right);

    public override string ToString() => $"{Type} ({Token.Length} bytes)";
}

/// <summary>
/// The messages of RFC 1961 (GSS-API authentication for SOCKS5). Pure span codec (docs/conventions.md §5).
/// </summary>
public static class GssapiCodec
{
    /// <summary>VER of every RFC 1961 message.</summary>
    public const byte Version = 1;

    /// <summary>VER, MTYP and the two-byte LEN.</summary>
    public const int HeaderLength = 4;

    /// <summary>LEN is two bytes: the longest token the protocol can carry.</summary>
    public const int MaxTokenLength = ushort.MaxValue;

    /// <summary>
    /// Cap on a token during context establishment and subnegotiation: a Kerberos AP-REQ with a large
    /// authorization-data (PAC) stays well under it, and a session never buffers more than this before it authenticates.
    /// </summary>
    public const int MaxHandshakeTokenLength = 16 * 1024;

    /*
     * RFC 1961 section 3.3, every message but the abort:
     *
     *   +------+------+------+.......................+
     *   + ver  | mtyp | len  |       token           |
     *   +------+------+------+.......................+
     *   + 0x01 | 0x01 | 0x02 | up to 2^16 - 1 octets |
     *   +------+------+------+.......................+
     *
     * The abort (section 3.4) is X'01' X'FF' alone.
     */

    /// <summary>Parses one handshake message, refusing a token above <see cref="MaxHandshakeTokenLength"/>.</summary>
    public static ParseStatus TryParseMessage(in ReadOnlySequence<byte> input, out GssapiMessage message, out int consumed, out SocksRejection reason) =>
        TryParseMessage(input, MaxHandshakeTokenLength, out message, out consumed, out reason);

    /// <summary>
    /// Parses one message; the token is copied out. A LEN above <paramref name="maxTokenLength"/> is
    /// <see cref="SocksRejection.GssapiTokenTooLarge"/> as soon as the header is in, before the token arrives.
    /// </summary>
    public static ParseStatus TryParseMessage(in ReadOnlySequence<byte> input, int maxTokenLength, out GssapiMessage message, out int consumed, out SocksRejection reason)
    {
        message = default;
        consumed = 0;
        reason = SocksRejection.None;
        var reader = new SequenceReader<byte>(input);
        if (!reader.TryRead(out byte version))
        {
            return ParseStatus.NeedMoreData;
        }
        if (version != Version)
        {
            reason = SocksRejection.BadGssapiVersion;
            return ParseStatus.Invalid;
        }
        if (!reader.TryRead(out byte type))
        {
            return ParseStatus.NeedMoreData;
        }
        if (type == (byte)GssapiMessageType.Abort)
        {
            message = new GssapiMessage(GssapiMessageType.Abort, ReadOnlyMemory<byte>.Empty);
            consumed = 2;
            return ParseStatus.Ok;
        }
        if (type is < (byte)GssapiMessageType.Authentication or > (byte)GssapiMessageType.Encapsulated)
        {
            reason = SocksRejection.BadGssapiMessageType;
            return ParseStatus.Invalid;
        }
        if (!reader.TryReadBigEndian(out short signedLength))
        {
            return ParseStatus.NeedMoreData;
        }
        int length = (ushort)signedLength;
        if (length > maxTokenLength)
        {
            reason = SocksRejection.GssapiTokenTooLarge;
            return ParseStatus.Invalid;
        }
        if (reader.Remaining < length)
        {
            return ParseStatus.NeedMoreData;
        }
        byte[] token = length == 0 ? [] : new byte[length];
        reader.TryCopyTo(token);
        message = new GssapiMessage((GssapiMessageType)type, token);
        consumed = HeaderLength + length;
        return ParseStatus.Ok;
    }

    /// <summary>
    /// The token of a UDP datagram of a protected association: RFC 1961 section 5 applies to UDP too, so each
    /// datagram (its SOCKS UDP header included) is exactly one encapsulation message. False for anything else:
    /// another VER or MTYP, a LEN that is not the rest of the datagram.
    /// </summary>
    public static bool TryParseDatagram(ReadOnlySpan<byte> datagram, out ReadOnlySpan<byte> token)
    {
        token = default;
        if (datagram.Length < HeaderLength || datagram[0] != Version || datagram[1] != (byte)GssapiMessageType.Encapsulated
            || BinaryPrimitives.ReadUInt16BigEndian(datagram[2..]) != datagram.Length - HeaderLength)
        {
            return false;
        }
        token = datagram[HeaderLength..];
        return true;
    }

    /// <summary>Writes a message; throws <see cref="ArgumentException"/> for a token over 65535 bytes or a token on an abort.</summary>
    public static void WriteMessage(GssapiMessageType type, ReadOnlySpan<byte> token, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (type == GssapiMessageType.Abort)
        {
            if (!token.IsEmpty)
            {
                throw new ArgumentException("the RFC 1961 abort message carries no token", nameof(token));
            }
            WriteAbort(output);
            return;
        }
        if (token.Length > MaxTokenLength)
        {
            throw new ArgumentException($"an RFC 1961 token holds at most {MaxTokenLength} bytes, not {token.Length}", nameof(token));
        }
        var span = output.GetSpan(HeaderLength + token.Length);
        WriteHeader(span, type, token.Length);
        token.CopyTo(span[HeaderLength..]);
        output.Advance(HeaderLength + token.Length);
    }

    /// <summary>Writes VER, MTYP and LEN into the first four bytes of <paramref name="destination"/>.</summary>
    public static void WriteHeader(Span<byte> destination, GssapiMessageType type, int tokenLength)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(tokenLength, MaxTokenLength);
        destination[0] = Version;
        destination[1] = (byte)type;
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)tokenLength);
    }

    /// <summary>Writes the failure message X'01' X'FF' (RFC 1961 section 3.4).</summary>
    public static void WriteAbort(IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var span = output.GetSpan(2);
        span[0] = Version;
        span[1] = (byte)GssapiMessageType.Abort;
        output.Advance(2);
    }

    /// <summary>
    /// The protection level a subnegotiation token names (one octet, RFC 1961 section 4.3), or null when the token
    /// is not one octet of 0 to 3.
    /// </summary>
    public static GssapiProtection? ParseProtection(ReadOnlySpan<byte> unwrapped) =>
        unwrapped.Length == 1 && unwrapped[0] <= (byte)GssapiProtection.PerMessage ? (GssapiProtection)unwrapped[0] : null;
}
