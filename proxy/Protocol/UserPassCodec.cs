using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using System.Text.Unicode;

namespace L2Balance.Proxy.Protocol;

/// <summary>
/// Username/password sub-negotiation of RFC 1929. Pure span codec (docs/conventions.md §5). Names and passwords
/// are UTF-8: RFC 1929 says only "octets", and UTF-8 is what curl, Dante and browsers send.
/// </summary>
public static class UserPassCodec
{
    /// <summary>VER of the sub-negotiation (RFC 1929 section 2), not the SOCKS version.</summary>
    public const byte Version = 1;

    /// <summary>STATUS sent for a failure. Any non-zero STATUS means failure (RFC 1929 section 2).</summary>
    private const byte FailureStatus = 1;

    // Strict encoder for writes: a lone surrogate throws instead of silently becoming U+FFFD,
    // which would send credentials other than the ones the caller gave.
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /*
     * Request (RFC 1929 section 2), client to server:
     *
     *   +----+------+----------+------+----------+
     *   |VER | ULEN |  UNAME   | PLEN |  PASSWD  |
     *   +----+------+----------+------+----------+
     *   | 1  |  1   | 1 to 255 |  1   | 1 to 255 |
     *   +----+------+----------+------+----------+
     *
     * PLEN 0 is accepted although the RFC says 1 to 255: clients send empty passwords
     * (curl for "user:@proxy"), and refusing them only turns a rule decision into a parse error.
     */

    /// <summary>
    /// Parses a request. VER != 1 → <see cref="SocksRejection.BadUserPassVersion"/>, ULEN 0 →
    /// <see cref="SocksRejection.EmptyUserName"/>, invalid UTF-8 → <see cref="SocksRejection.BadCredentialsEncoding"/>.
    /// </summary>
    public static ParseStatus TryParseRequest(in ReadOnlySequence<byte> input, out UserPassRequest request, out int consumed, out SocksRejection reason)
    {
        request = default;
        consumed = 0;
        reason = SocksRejection.None;
        var reader = new SequenceReader<byte>(input);
        if (!TryReadVersion(ref reader, ref reason, out ParseStatus status))
        {
            return status;
        }

        Span<byte> field = stackalloc byte[byte.MaxValue];
        if (!reader.TryRead(out byte userLength))
        {
            return ParseStatus.NeedMoreData;
        }

        if (userLength == 0)
        {
            reason = SocksRejection.EmptyUserName;
            return ParseStatus.Invalid;
        }

        if (!TryReadField(ref reader, field[..userLength], out string? userName, ref reason, out status))
        {
            return status;
        }

        if (!reader.TryRead(out byte passwordLength))
        {
            return ParseStatus.NeedMoreData;
        }

        if (!TryReadField(ref reader, field[..passwordLength], out string? password, ref reason, out status))
        {
            return status;
        }

        request = new UserPassRequest(userName, password);
        consumed = (int)reader.Consumed;
        return ParseStatus.Ok;
    }

    /// <summary>
    /// Writes a request; throws <see cref="ArgumentException"/> unless the user name is 1 to 255
    /// UTF-8 bytes and the password 0 to 255.
    /// </summary>
    public static void WriteRequest(in UserPassRequest request, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(request.UserName, nameof(request));
        ArgumentNullException.ThrowIfNull(request.Password, nameof(request));
        int userLength = StrictUtf8.GetByteCount(request.UserName);
        int passwordLength = StrictUtf8.GetByteCount(request.Password);
        if (userLength is 0 or > byte.MaxValue || passwordLength > byte.MaxValue)
        {
            throw new ArgumentException(
                $"RFC 1929 needs a 1 to 255 byte user name and a 0 to 255 byte password, not {userLength} and {passwordLength} bytes.",
                nameof(request));
        }

        int length = 3 + userLength + passwordLength;
        Span<byte> span = output.GetSpan(length);
        span[0] = Version;
        span[1] = (byte)userLength;
        StrictUtf8.GetBytes(request.UserName, span.Slice(2, userLength));
        span[2 + userLength] = (byte)passwordLength;
        StrictUtf8.GetBytes(request.Password, span.Slice(3 + userLength, passwordLength));
        output.Advance(length);
    }

    /*
     * Reply (RFC 1929 section 2), server to client:
     *
     *   +----+--------+
     *   |VER | STATUS |
     *   +----+--------+
     *   | 1  |   1    |
     *   +----+--------+
     *
     * STATUS X'00' is success; any other value is failure, and the server must then close.
     */

    /// <summary>Parses a reply: <paramref name="success"/> is STATUS == 0.</summary>
    public static ParseStatus TryParseReply(in ReadOnlySequence<byte> input, out bool success, out int consumed, out SocksRejection reason)
    {
        success = false;
        consumed = 0;
        reason = SocksRejection.None;
        var reader = new SequenceReader<byte>(input);
        if (!TryReadVersion(ref reader, ref reason, out ParseStatus status))
        {
            return status;
        }

        if (!reader.TryRead(out byte code))
        {
            return ParseStatus.NeedMoreData;
        }

        success = code == 0;
        consumed = 2;
        return ParseStatus.Ok;
    }

    /// <summary>Writes a reply: STATUS 0 for success, 1 for failure.</summary>
    public static void WriteReply(bool success, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        Span<byte> span = output.GetSpan(2);
        span[0] = Version;
        span[1] = success ? (byte)0 : FailureStatus;
        output.Advance(2);
    }

    private static bool TryReadVersion(ref SequenceReader<byte> reader, ref SocksRejection reason, out ParseStatus status)
    {
        if (!reader.TryRead(out byte version))
        {
            status = ParseStatus.NeedMoreData;
            return false;
        }

        if (version != Version)
        {
            reason = SocksRejection.BadUserPassVersion;
            status = ParseStatus.Invalid;
            return false;
        }

        status = ParseStatus.Ok;
        return true;
    }

    /// <summary>Reads exactly <c>buffer.Length</c> bytes and decodes them as strict UTF-8.</summary>
    private static bool TryReadField(ref SequenceReader<byte> reader, scoped Span<byte> buffer, [NotNullWhen(true)] out string? value, ref SocksRejection reason, out ParseStatus status)
    {
        value = null;
        if (!reader.TryCopyTo(buffer))
        {
            status = ParseStatus.NeedMoreData;
            return false;
        }

        if (!Utf8.IsValid(buffer))
        {
            reason = SocksRejection.BadCredentialsEncoding;
            status = ParseStatus.Invalid;
            return false;
        }

        reader.Advance(buffer.Length);
        value = Encoding.UTF8.GetString(buffer);
        status = ParseStatus.Ok;
        return true;
    }
}
