using System.Net.Sockets;
using System.Runtime.InteropServices;
using static L2Balance.Balancer.Interop.Netlink;

namespace L2Balance.Balancer.Net;

/// <summary>
/// A NETLINK_SOCK_DIAG socket in the network namespace of the thread that opened it: dumps the TCP
/// sockets of a family in chosen states (<see cref="SockDiagCodec"/>), what <c>ss</c> reads. Not thread-safe.
/// </summary>
internal sealed class SockDiagSocket : IDisposable
{
    /// <summary>The kernel answers a dump at once; this only bounds a lost reply.</summary>
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(1);

    private readonly SafeSocketHandle _socket;
    private readonly byte[] _buffer = new byte[32 * 1024];
    private uint _sequence;

    private SockDiagSocket(SafeSocketHandle socket)
    {
        _socket = socket;
        _sequence = (uint)Environment.TickCount;
    }

    /// <summary>Opens the socket in the calling thread's network namespace.</summary>
    public static SockDiagSocket Open() => new(NetlinkSockets.Open(NETLINK_SOCK_DIAG, "NETLINK_SOCK_DIAG", ReplyTimeout));

    /// <summary>Calls <paramref name="socket"/> for every TCP socket of <paramref name="family"/> in one of <paramref name="states"/>; a failed or malformed dump is an IOException.</summary>
    public void Dump(byte family, uint states, Action<InetDiagSocket> socket)
    {
        var sequence = unchecked(++_sequence);
        Span<byte> request = stackalloc byte[SockDiagCodec.RequestLength];
        var length = SockDiagCodec.WriteDump(request, family, sequence, states);
        if (send(_socket, request, (nuint)length, 0) != length)
        {
            throw new IOException($"sock_diag send: {Errno.Name(Marshal.GetLastPInvokeError())}");
        }
        while (true)
        {
            int n = NetlinkSockets.Receive(_socket, _buffer, ReplyTimeout, "sock_diag dump");
            switch (SockDiagCodec.Read(_buffer.AsSpan(0, n), sequence, socket, out var error))
            {
                case NetlinkDumpStatus.Done:
                    return;
                case NetlinkDumpStatus.Error:
                    throw new IOException($"sock_diag dump: {Errno.Name(error)}");
                case NetlinkDumpStatus.Invalid:
                    throw new IOException("sock_diag: malformed reply");
            }
        }
    }

    public void Dispose() => _socket.Dispose();
}
