using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
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
    /// <summary>The kernel answers a dump at once; this only bounds a lost reply.</summary>
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(1);

    private readonly SafeSocketHandle _socket;
    private readonly byte[] _buffer = new byte[32 * 1024];
    private readonly Action<IPAddress, int> _onListener;
    private uint _sequence;
    private bool _found;

    private ListenCheck(SafeSocketHandle socket, IPEndPoint endPoint)
    {
        _socket = socket;
        EndPoint = endPoint;
        _sequence = (uint)Environment.TickCount;
        _onListener = (address, port) => _found |= port == EndPoint.Port && Takes(address);
    }

    /// <summary>The endpoint checked.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>Opens a NETLINK_SOCK_DIAG socket in the calling thread's network namespace.</summary>
    public static ListenCheck Open(IPEndPoint endPoint)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        var handle = NetlinkSockets.Open(NETLINK_SOCK_DIAG, "NETLINK_SOCK_DIAG", ReplyTimeout);
        return new ListenCheck(handle, endPoint);
    }

    /// <summary>
    /// True when a listening TCP socket takes connections to <see cref="EndPoint"/>: bound to its
    /// port on its address, on 0.0.0.0, or on :: (which takes IPv4 too unless IPV6_V6ONLY; the
    /// full probe tells the rest).
    /// </summary>
    public bool Listens() => Dump(AF_INET) || Dump(AF_INET6);

    public void Dispose() => _socket.Dispose();

    private bool Takes(IPAddress address) =>
        address.Equals(EndPoint.Address) || address.Equals(IPAddress.IPv6Any)
        || (EndPoint.AddressFamily == AddressFamily.InterNetwork
            && (address.Equals(IPAddress.Any) || (address.IsIPv4MappedToIPv6 && address.MapToIPv4().Equals(EndPoint.Address))));

    private bool Dump(byte family)
    {
        var sequence = unchecked(++_sequence);
        Span<byte> request = stackalloc byte[SockDiagCodec.RequestLength];
        var length = SockDiagCodec.WriteListenDump(request, family, sequence);
        if (send(_socket, request, (nuint)length, 0) != length)
        {
            throw new IOException($"sock_diag send: {Errno.Name(Marshal.GetLastPInvokeError())}");
        }
        _found = false;
        while (true)
        {
            int n = NetlinkSockets.Receive(_socket, _buffer, ReplyTimeout, "sock_diag dump");
            switch (SockDiagCodec.Read(_buffer.AsSpan(0, n), sequence, _onListener, out var error))
            {
                case NetlinkDumpStatus.Done:
                    return _found;
                case NetlinkDumpStatus.Error:
                    throw new IOException($"sock_diag dump: {Errno.Name(error)}");
                case NetlinkDumpStatus.Invalid:
                    throw new IOException("sock_diag: malformed reply");
            }
        }
    }
}
