using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Net;
using static L2Balance.Balancer.Interop.Netlink;

namespace L2Balance.Balancer.Health;

/// <summary>
/// Whether a process listens on a local TCP endpoint, asked of the kernel (a sock_diag dump of
/// the listening sockets, what <c>ss -ltn</c> reads) instead of connecting: no handshake through
/// the node's own filter, no connection for the proxy to accept, a few microseconds of kernel
/// time. It sees a killed or crashed proxy (its socket is gone), not a hung one (the kernel keeps
/// the socket and even completes handshakes for it): that is what the full probe is for.
/// </summary>
internal sealed class ListenCheck : IDisposable
{
    private readonly SockDiagSocket _diag;
    private readonly Action<InetDiagSocket> _onListener;
    private bool _found;

    private ListenCheck(SockDiagSocket diag, IPEndPoint endPoint)
    {
        _diag = diag;
        EndPoint = endPoint;
        _onListener = s => _found |= s.Local.Port == EndPoint.Port && Takes(s.Local.Address);
    }

    /// <summary>The endpoint checked.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>Opens a NETLINK_SOCK_DIAG socket in the calling thread's network namespace.</summary>
    public static ListenCheck Open(IPEndPoint endPoint)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        return new ListenCheck(SockDiagSocket.Open(), endPoint);
    }

    /// <summary>
    /// True when a listening TCP socket takes connections to <see cref="EndPoint"/>: bound to its
    /// port on its address, on 0.0.0.0, or on :: (which takes IPv4 too unless IPV6_V6ONLY; the
    /// full probe tells the rest).
    /// </summary>
    public bool Listens() => Dump(AF_INET) || Dump(AF_INET6);

    public void Dispose() => _diag.Dispose();

    private bool Takes(IPAddress address) =>
        address.Equals(EndPoint.Address) || address.Equals(IPAddress.IPv6Any)
        || (EndPoint.AddressFamily == AddressFamily.InterNetwork
            && (address.Equals(IPAddress.Any) || (address.IsIPv4MappedToIPv6 && address.MapToIPv4().Equals(EndPoint.Address))));

    private bool Dump(byte family)
    {
        _found = false;
        _diag.Dump(family, SockDiagCodec.ListenStates, _onListener);
        return _found;
    }
}
