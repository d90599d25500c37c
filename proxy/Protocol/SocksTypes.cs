using System.Net;

namespace L2Balance.Proxy.Protocol;

/// <summary>SOCKS5 reply codes, exactly the set of RFC 1928 section 6 (the REP field).</summary>
public enum ReplyCode : byte
{
    Succeeded = 0x00,
    GeneralFailure = 0x01,
    NotAllowedByRuleset = 0x02,
    NetworkUnreachable = 0x03,
    HostUnreachable = 0x04,
    ConnectionRefused = 0x05,
    TtlExpired = 0x06,
    CommandNotSupported = 0x07,
    AddressTypeNotSupported = 0x08,
}

/// <summary>SOCKS4 reply codes (the CD field of a SOCKS4 reply).</summary>
public enum Socks4ReplyCode : byte
{
    Granted = 90,
    RejectedOrFailed = 91,
    IdentdUnreachable = 92,
    IdentdMismatch = 93,
}

/// <summary>SOCKS commands, with the wire values of RFC 1928 (SOCKS4 uses the same 1 and 2).</summary>
public enum SocksCommand : byte
{
    Connect = 0x01,
    Bind = 0x02,
    UdpAssociate = 0x03,
}

/// <summary>SOCKS5 authentication methods (RFC 1928 section 3).</summary>
public enum AuthMethod : byte
{
    NoAuthentication = 0x00,
    Gssapi = 0x01,
    UsernamePassword = 0x02,
    NoAcceptableMethods = 0xFF,
}

/// <summary>ATYP values of RFC 1928 section 4.</summary>
public enum SocksAddressType : byte
{
    IPv4 = 0x01,
    DomainName = 0x03,
    IPv6 = 0x04,
}

/// <summary>
/// A SOCKS address and port: either an IP address or a domain name (never both).
/// </summary>
public readonly record struct SocksEndpoint
{
    private SocksEndpoint(IPAddress? address, string? host, ushort port)
    {
        Address = address;
        Host = host;
        Port = port;
    }

    /// <summary>The IP address, when the endpoint carries one.</summary>
    public IPAddress? Address { get; }

    /// <summary>The domain name, when the endpoint carries one (ATYP 3, or SOCKS4a).</summary>
    public string? Host { get; }

    public ushort Port { get; }

    public bool IsDomain => Host is not null;

    public SocksAddressType AddressType => Host is not null
        ? SocksAddressType.DomainName
        : Address!.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? SocksAddressType.IPv6 : SocksAddressType.IPv4;

    public static SocksEndpoint FromAddress(IPAddress address, ushort port)
    {
        ArgumentNullException.ThrowIfNull(address);
        return new SocksEndpoint(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address, null, port);
    }

    public static SocksEndpoint FromEndPoint(IPEndPoint endPoint)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        return FromAddress(endPoint.Address, (ushort)endPoint.Port);
    }

    public static SocksEndpoint FromHost(string host, ushort port)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        return new SocksEndpoint(null, host, port);
    }

    public override string ToString() => Host is not null
        ? $"{Host}:{Port}"
        : Address!.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{Address}]:{Port}" : $"{Address}:{Port}";
}

/// <summary>Outcome of a codec's TryParse (Kestrel HttpParser style).</summary>
public enum ParseStatus
{
    /// <summary>A whole message was parsed; <c>consumed</c> bytes belong to it.</summary>
    Ok,
    /// <summary>The input is a strict prefix of a valid message; nothing was consumed.</summary>
    NeedMoreData,
    /// <summary>The input can never become a valid message; see the reason.</summary>
    Invalid,
}
