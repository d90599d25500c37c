using System.Net.Sockets;

namespace L2Balance.Proxy.Protocol;

/// <summary>
/// The one mapping from socket errors to SOCKS replies (docs/conventions.md §6; microsocks <c>enum errorcode</c>,
/// Dante <c>errno2reply</c>), and from SOCKS5 replies to SOCKS4 ones.
/// </summary>
public static class SocksErrors
{
    /// <summary>Maps the error of a connect (or name resolution) to the RFC 1928 REP to send.</summary>
    public static ReplyCode FromSocketError(SocketError error) => error switch
    {
        SocketError.Success => ReplyCode.Succeeded,
        SocketError.ConnectionRefused => ReplyCode.ConnectionRefused,
        SocketError.NetworkUnreachable or SocketError.NetworkDown => ReplyCode.NetworkUnreachable,
        // Resolver failures (HostNotFound, NoData, TryAgain) land here too. RFC 1928 has no code for
        // a failed lookup (microsocks sends X'01' for it); X'04' tells the client the host is the problem.
        SocketError.HostUnreachable or SocketError.HostDown or SocketError.HostNotFound
            or SocketError.NoData or SocketError.TryAgain => ReplyCode.HostUnreachable,
        // ETIMEDOUT: RFC 1928 has no "timed out" code. X'06' "TTL expired" is the convention of
        // microsocks (connect_socks_target: case ETIMEDOUT: return -EC_TTL_EXPIRED); it keeps
        // "nobody answered" distinct from a routing failure (X'03'/X'04').
        SocketError.TimedOut => ReplyCode.TtlExpired,
        SocketError.AccessDenied => ReplyCode.NotAllowedByRuleset,
        SocketError.AddressFamilyNotSupported => ReplyCode.AddressTypeNotSupported,
        _ => ReplyCode.GeneralFailure,
    };

    /// <summary>
    /// The reply a SOCKS5 server sends for a request the codec rejected: X'07' for an unknown CMD and
    /// X'08' for an unknown ATYP (RFC 1928 section 6), X'01' for any other malformed request.
    /// </summary>
    public static ReplyCode FromRejection(SocksRejection reason) => reason switch
    {
        SocksRejection.BadCommand => ReplyCode.CommandNotSupported,
        SocksRejection.BadAddressType => ReplyCode.AddressTypeNotSupported,
        _ => ReplyCode.GeneralFailure,
    };

    /// <summary>SOCKS4 has one failure code: Succeeded → Granted (90), anything else → RejectedOrFailed (91).</summary>
    public static Socks4ReplyCode ToSocks4(ReplyCode reply) =>
        reply == ReplyCode.Succeeded ? Socks4ReplyCode.Granted : Socks4ReplyCode.RejectedOrFailed;
}
