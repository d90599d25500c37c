using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using L2Balance.Common.Linux;
using L2Balance.Proxy.Config;
using static L2Balance.Proxy.Interop.Interop.Sockets;

namespace L2Balance.Proxy.Server;

/// <summary>
/// Binds the sockets the proxy opens on a shared address (UDP relays, BIND listeners, and in
/// single-IP mode outgoing TCP and UDP on the VIP) inside the configured port range, so that in a
/// cluster each node keeps to its own slice (docs/design.md#port-slices, #single-ip-mode).
/// </summary>
/// <remarks>
/// Where the kernel has <c>IP_LOCAL_PORT_RANGE</c> (Linux 6.3+) the range is set on the socket and
/// the kernel chooses the port: at <c>bind</c> for listeners and relays, at <c>connect</c> (with
/// <c>IP_BIND_ADDRESS_NO_PORT</c>) for outgoing TCP, so one port serves many destinations and ports
/// holding a TIME_WAIT to the same destination are skipped. Without it (ENOPROTOOPT) the port is
/// bound explicitly, from a random start with a retry on EADDRINUSE over the whole range; so is a
/// range outside the node's <c>ip_local_port_range</c>, which the kernel's option would ignore. An
/// outgoing TCP socket binds its explicit port without SO_REUSEADDR (<see cref="BindExclusive"/>).
/// </remarks>
internal static class PortBinder
{
    /// <summary>Linux IP_LOCAL_PORT_RANGE (linux/in.h, 6.3+): u32 low | high &lt;&lt; 16, per socket; level IPPROTO_IP, also on IPv6 sockets.</summary>
    internal const int IpLocalPortRange = 51;

    /// <summary>Linux IP_BIND_ADDRESS_NO_PORT (linux/in.h): bind the address now, choose the port at connect.</summary>
    internal const int IpBindAddressNoPort = 24;

    private static readonly byte[] OptionOn = BitConverter.GetBytes(1);

    // 1: the kernel takes IP_LOCAL_PORT_RANGE; -1: it refused with ENOPROTOOPT (older kernel); 0: not tried yet.
    private static int s_kernelRange;

    /// <summary>Whether the kernel picks ports inside the range itself (null before the first socket asked).</summary>
    public static bool? KernelRange => Volatile.Read(ref s_kernelRange) switch { 1 => true, -1 => false, _ => null };

    /// <summary>
    /// Binds <paramref name="socket"/> (UDP relay, BIND listener) on <paramref name="address"/> with a
    /// port inside <paramref name="range"/> (any port when null). Range exhausted: SocketException
    /// AddressAlreadyInUse.
    /// </summary>
    public static void Bind(Socket socket, IPAddress address, PortRange? range)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (range is not { } r)
        {
            socket.Bind(new IPEndPoint(address, 0));
            return;
        }
        if (TrySetKernelRange(socket, r))
        {
            socket.Bind(new IPEndPoint(address, 0));
            return;
        }
        BindExplicit(socket, address, r);
    }

    /// <summary>
    /// Prepares an outgoing TCP socket to connect from <paramref name="address"/>: the port is chosen
    /// at connect (per 4-tuple, inside <paramref name="range"/> when given). Range exhausted: the
    /// connect fails with AddressNotAvailable (kernel range) or this throws AddressAlreadyInUse (fallback).
    /// </summary>
    public static void BindForConnect(Socket socket, IPAddress address, PortRange? range)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (range is { } r && !TrySetKernelRange(socket, r))
        {
            BindExplicit(socket, address, r, exclusive: true);
            return;
        }
        socket.SetRawSocketOption((int)SocketOptionLevel.IP, IpBindAddressNoPort, OptionOn);
        socket.Bind(new IPEndPoint(address, 0));
    }

    /// <summary>Whether a socket error means the range had no free port for this socket.</summary>
    public static bool IsExhausted(SocketError error) => error is SocketError.AddressAlreadyInUse or SocketError.AddressNotAvailable;

    /// <summary>The option's value: low in the low 16 bits, high in the high 16 bits.</summary>
    internal static byte[] RangeValue(PortRange range) => BitConverter.GetBytes((uint)range.Low | ((uint)range.High << 16));

    // The node's net.ipv4.ip_local_port_range, read once (the proxy lives in one namespace).
    private static readonly Lazy<PortRange?> s_localRange = new(ReadLocalRange);

    private static bool TrySetKernelRange(Socket socket, PortRange range)
    {
        // The kernel intersects the socket's range with ip_local_port_range and silently takes the
        // whole of the latter when they do not meet: only a range inside it is safe to hand over.
        if (Volatile.Read(ref s_kernelRange) < 0 || s_localRange.Value is not { } local || range.Low < local.Low || range.High > local.High)
        {
            return false;
        }
        try
        {
            socket.SetRawSocketOption((int)SocketOptionLevel.IP, IpLocalPortRange, RangeValue(range));
            Volatile.Write(ref s_kernelRange, 1);
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ProtocolOption)
        {
            Volatile.Write(ref s_kernelRange, -1);
            return false;
        }
    }

    /// <summary>Whether <paramref name="range"/> lies inside the node's ip_local_port_range (where the kernel's per-socket range applies).</summary>
    internal static bool InsideLocalRange(PortRange range) =>
        s_localRange.Value is { } local && range.Low >= local.Low && range.High <= local.High;

    private static PortRange? ReadLocalRange()
    {
        try
        {
            var parts = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            return parts.Length == 2 && ushort.TryParse(parts[0], out var low) && ushort.TryParse(parts[1], out var high) && low <= high
                ? new PortRange(low, high) : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// The fallback without IP_LOCAL_PORT_RANGE: an explicit port from a random start, the next on
    /// EADDRINUSE. <paramref name="exclusive"/> (outgoing TCP): a port no other socket holds, see <see cref="BindExclusive"/>.
    /// </summary>
    internal static void BindExplicit(Socket socket, IPAddress address, PortRange r, bool exclusive = false)
    {
        // A random start, so concurrent binds do not all collide on the first free port.
        var start = Random.Shared.Next(r.Count);
        for (var i = 0; i < r.Count; i++)
        {
            var port = r.Low + ((start + i) % r.Count);
            try
            {
                if (exclusive)
                {
                    BindExclusive(socket, new IPEndPoint(address, port));
                }
                else
                {
                    socket.Bind(new IPEndPoint(address, port));
                }
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
            }
        }
        throw new SocketException((int)SocketError.AddressAlreadyInUse);
    }

    /// <summary>
    /// bind(2) without the SO_REUSEADDR that Socket.Bind sets on TCP sockets: with it two outgoing
    /// sockets share a port and the second connect to the same target fails with EADDRNOTAVAIL
    /// (issue 18); without it a port held by any socket, TIME_WAIT included, is EADDRINUSE.
    /// </summary>
    internal static void BindExclusive(Socket socket, IPEndPoint local)
    {
        var address = local.Serialize();
        if (bind(socket.SafeHandle, address.Buffer.Span[..address.Size], address.Size) == 0)
        {
            return;
        }
        var errno = Marshal.GetLastPInvokeError();
        throw new SocketException((int)(errno switch
        {
            EADDRINUSE => SocketError.AddressAlreadyInUse,
            Errno.EADDRNOTAVAIL => SocketError.AddressNotAvailable,
            EACCES => SocketError.AccessDenied,
            Errno.EINVAL => SocketError.InvalidArgument,
            _ => SocketError.SocketError,
        }));
    }
}
