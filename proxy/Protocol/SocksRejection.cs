namespace L2Balance.Proxy.Protocol;

/// <summary>
/// Why a SOCKS codec refused its input (<see cref="ParseStatus.Invalid"/>). A closed set, one member
/// per reason, reused as the label of logs and metrics (docs/conventions.md §6; Kestrel <c>RequestRejectionReason</c>).
/// Values are explicit and never reused, because metrics and logs record them.
/// </summary>
public enum SocksRejection
{
    /// <summary>No rejection: the parse returned <see cref="ParseStatus.Ok"/> or <see cref="ParseStatus.NeedMoreData"/>.</summary>
    None = 0,

    /// <summary>VER/VN is not the protocol's version (5 for SOCKS5, 4 for a SOCKS4 request, 0 for a SOCKS4 reply).</summary>
    BadVersion = 1,

    /// <summary>A SOCKS5 greeting with NMETHODS = 0: the client offers nothing to select (RFC 1928 section 3).</summary>
    NoMethods = 2,

    /// <summary>CMD is not a command of the protocol. A SOCKS5 server answers this with
    /// <see cref="ReplyCode.CommandNotSupported"/> (RFC 1928 section 6).</summary>
    BadCommand = 3,

    /// <summary>A reserved field (RSV) is not zero (RFC 1928 sections 4, 6 and 7).</summary>
    BadReservedByte = 4,

    /// <summary>ATYP is not 1, 3 or 4. A SOCKS5 server answers this with
    /// <see cref="ReplyCode.AddressTypeNotSupported"/> (RFC 1928 section 6).</summary>
    BadAddressType = 5,

    /// <summary>A domain name of length zero (SOCKS5 ATYP 3 with length 0, or an empty SOCKS4a hostname).</summary>
    EmptyDomainName = 6,

    /// <summary>A domain name holding a byte outside printable ASCII (0x21..0x7E): control characters,
    /// space, DEL or non-ASCII. Such names cannot be a DNS name and would corrupt logs.</summary>
    BadDomainName = 7,

    /// <summary>A SOCKS4 USERID or SOCKS4a hostname with no NUL within its first 256 bytes.</summary>
    TooLong = 8,

    /// <summary>The RFC 1929 sub-negotiation VER is not 1.</summary>
    BadUserPassVersion = 9,

    /// <summary>An RFC 1929 request with ULEN = 0 (the RFC requires 1 to 255).</summary>
    EmptyUserName = 10,

    /// <summary>A user name, password or SOCKS4 USERID that is not valid UTF-8.</summary>
    BadCredentialsEncoding = 11,

    /// <summary>A UDP datagram shorter than its own SOCKS header (RFC 1928 section 7). Datagrams arrive
    /// whole, so this replaces <see cref="ParseStatus.NeedMoreData"/> there.</summary>
    Truncated = 12,

    /// <summary>A reply status the protocol does not define: a SOCKS5 REP above 0x08, or a SOCKS4 CD
    /// outside 90..93.</summary>
    BadStatus = 13,

    /// <summary>An RFC 1961 message whose VER is not 1.</summary>
    BadGssapiVersion = 14,

    /// <summary>An RFC 1961 MTYP other than 1 (authentication), 2 (protection level), 3 (encapsulated data) or 0xFF (abort).</summary>
    BadGssapiMessageType = 15,

    /// <summary>An RFC 1961 token longer than the reader's cap (<see cref="GssapiCodec.MaxHandshakeTokenLength"/> during the handshake).</summary>
    GssapiTokenTooLarge = 16,
}
