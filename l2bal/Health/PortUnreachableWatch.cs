using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using L2Balance.Balancer.Net;
using static L2Balance.Balancer.Interop.Netlink;

namespace L2Balance.Balancer.Health;

/// <summary>
/// Reads the kernel's word that a UDP service of the VIP is dead: the output chain logs each ICMP
/// port-unreachable from the VIP to a probed port to nflog group <see cref="Kernel.NftRuleset.PortUnreachableLogGroup"/>
/// before dropping it (docs/design.md#output), and this socket, bound to that group, hands the port
/// to <see cref="HealthMonitor.Wake"/> (docs/design.md#health). Binding needs CAP_NET_ADMIN in the
/// sending thread's effective set (nfnetlink checks it per message), which every l2bal thread keeps.
/// </summary>
internal sealed class PortUnreachableWatch : IDisposable
{
    /// <summary>Bounds a lost ack and how long a stop waits for the blocked receive.</summary>
    private static readonly TimeSpan ReceiveTimeout = TimeSpan.FromMilliseconds(250);

    private readonly SafeSocketHandle _socket;
    private readonly byte[] _buffer = new byte[16 * 1024];

    private PortUnreachableWatch(SafeSocketHandle socket) => _socket = socket;

    /// <summary>
    /// Opens a NETLINK_NETFILTER socket in the calling thread's namespace and binds it to log
    /// <paramref name="group"/>. An IOException names the errno: EBUSY when another socket holds the group.
    /// </summary>
    public static PortUnreachableWatch Open(ushort group)
    {
        var handle = NetlinkSockets.Open(NETLINK_NETFILTER, "NETLINK_NETFILTER", ReceiveTimeout);
        var watch = new PortUnreachableWatch(handle);
        try
        {
            watch.Bind(group);
            return watch;
        }
        catch
        {
            watch.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Receives until <paramref name="stop"/>, calling <paramref name="packet"/> per logged packet.
    /// ENOBUFS (the kernel dropped log messages while this thread was late) counts in
    /// <paramref name="overrun"/> and reading goes on; any other error is an IOException.
    /// </summary>
    public void Run(IPAddress vip, Action<NflogPacketVerdict, int> packet, Action overrun, CancellationToken stop)
    {
        ArgumentNullException.ThrowIfNull(vip);
        var address = vip.GetAddressBytes();
        while (!stop.IsCancellationRequested)
        {
            nint n = recv(_socket, _buffer, (nuint)_buffer.Length, 0);
            if (n >= 0)
            {
                NflogCodec.Read(_buffer.AsSpan(0, (int)Math.Min(n, _buffer.Length)), address, packet);
                continue;
            }
            int errno = Marshal.GetLastPInvokeError();
            if (errno == ENOBUFS)
            {
                overrun();
            }
            else if (errno is not (EAGAIN or EINTR))
            {
                throw new IOException($"nflog recv: {Errno.Name(errno)}");
            }
        }
    }

    public void Dispose() => _socket.Dispose();

    private void Bind(ushort group)
    {
        var sequence = (uint)Environment.TickCount;
        Span<byte> request = stackalloc byte[NflogCodec.BindLength];
        var length = NflogCodec.WriteBind(request, group, sequence);
        if (NetlinkSockets.Acknowledged(_socket, request[..length], sequence, _buffer, ReceiveTimeout, "nflog bind") is not 0 and var errno)
        {
            throw new IOException($"nflog bind to group {group}: {Errno.Name(errno)}");
        }
    }
}
