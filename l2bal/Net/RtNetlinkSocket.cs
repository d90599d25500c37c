using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using static L2Balance.Balancer.Interop.Netlink;

namespace L2Balance.Balancer.Net;

/// <summary>
/// A NETLINK_ROUTE socket for adding and removing interface addresses, in the network namespace
/// of the thread that opened it. Requests are synchronous and acknowledged (NLM_F_ACK): every
/// errno the kernel returns becomes an exception naming it, so nothing fails silently.
/// </summary>
internal sealed class RtNetlinkSocket : IDisposable
{
    /// <summary>The kernel answers an address request at once; this only bounds a lost ack.</summary>
    private static readonly TimeSpan AckTimeout = TimeSpan.FromSeconds(5);

    private readonly SafeSocketHandle _socket;
    private readonly byte[] _receiveBuffer = new byte[8192];
    private uint _sequence;

    private RtNetlinkSocket(SafeSocketHandle socket)
    {
        _socket = socket;
        _sequence = (uint)Environment.TickCount;
    }

    /// <summary>Opens the socket in the calling thread's network namespace.</summary>
    public static RtNetlinkSocket Open() => new(NetlinkSockets.Open(NETLINK_ROUTE, "NETLINK_ROUTE", AckTimeout));

    /// <summary>Adds <paramref name="address"/>/<paramref name="prefixLength"/>; false if it was already there (EEXIST).</summary>
    public bool AddAddress(int interfaceIndex, IPAddress address, byte prefixLength) =>
        Request(RTM_NEWADDR, "RTM_NEWADDR", interfaceIndex, address, prefixLength, toleratedErrno: Errno.EEXIST);

    /// <summary>Removes <paramref name="address"/>/<paramref name="prefixLength"/>; false if it was not there (EADDRNOTAVAIL).</summary>
    public bool DeleteAddress(int interfaceIndex, IPAddress address, byte prefixLength) =>
        Request(RTM_DELADDR, "RTM_DELADDR", interfaceIndex, address, prefixLength, toleratedErrno: Errno.EADDRNOTAVAIL);

    public void Dispose() => _socket.Dispose();

    private bool Request(ushort type, string typeName, int interfaceIndex, IPAddress address, byte prefixLength, int toleratedErrno)
    {
        uint sequence = unchecked(++_sequence);
        Span<byte> request = stackalloc byte[RtNetlinkCodec.AddressRequestLength6];
        int length = RtNetlinkCodec.WriteAddressRequest(request, type, sequence, interfaceIndex, address, prefixLength);
        string what = $"{typeName}({address}/{prefixLength}, ifindex {interfaceIndex})";
        int errno = NetlinkSockets.Acknowledged(_socket, request[..length], sequence, _receiveBuffer, AckTimeout, what);
        if (errno == 0 || errno == toleratedErrno)
        {
            return errno == 0;
        }

        throw new IOException($"netlink {what}: {Errno.Name(errno)}");
    }
}
