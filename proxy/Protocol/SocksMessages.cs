using System.Net;

namespace L2Balance.Proxy.Protocol;

/// <summary>
/// A SOCKS5 method-selection message from the client (RFC 1928 section 3).
/// </summary>
/// <param name="Methods">The METHOD bytes exactly as offered, in order (1 to 255 of them). Unknown
/// values are kept: the server simply never selects them.</param>
public readonly record struct Socks5Greeting(ReadOnlyMemory<byte> Methods)
{
    /// <summary>Whether the client offered <paramref name="method"/>.</summary>
    public bool Offers(AuthMethod method) => Methods.Span.Contains((byte)method);

    /// <summary>Compares the offered method bytes, not the buffers that hold them.</summary>
    public bool Equals(Socks5Greeting other) => Methods.Span.SequenceEqual(other.Methods.Span);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.AddBytes(Methods.Span);
        return hash.ToHashCode();
    }
}

/// <summary>A SOCKS5 request (RFC 1928 section 4).</summary>
public readonly record struct Socks5Request(SocksCommand Command, SocksEndpoint Destination);

/// <summary>A SOCKS5 reply (RFC 1928 section 6). <paramref name="Bound"/> is BND.ADDR/BND.PORT.</summary>
public readonly record struct Socks5Reply(ReplyCode Reply, SocksEndpoint Bound);

/// <summary>A username/password request (RFC 1929 section 2), decoded as UTF-8.</summary>
public readonly record struct UserPassRequest(string UserName, string Password);

/// <summary>
/// A SOCKS4 request, or a SOCKS4a request when <c>Destination.IsDomain</c>.
/// </summary>
/// <param name="Command"><see cref="SocksCommand.Connect"/> or <see cref="SocksCommand.Bind"/>.</param>
/// <param name="Destination">An IPv4 endpoint, or a host name (SOCKS4a).</param>
/// <param name="UserId">The USERID field, decoded as UTF-8; empty when the client sent none.</param>
public readonly record struct Socks4Request(SocksCommand Command, SocksEndpoint Destination, string UserId);

/// <summary>A SOCKS4 reply. <paramref name="Address"/> is always IPv4.</summary>
public readonly record struct Socks4Reply(Socks4ReplyCode Code, IPAddress Address, ushort Port);

/// <summary>The header of a SOCKS5 UDP datagram (RFC 1928 section 7).</summary>
/// <param name="Fragment">FRAG as received. It is reported, not rejected: the relay decides
/// (RFC 1928 lets an implementation drop any datagram with FRAG != 0).</param>
/// <param name="Destination">DST.ADDR/DST.PORT.</param>
public readonly record struct UdpHeader(byte Fragment, SocksEndpoint Destination);
