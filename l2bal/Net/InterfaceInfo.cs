using System.Net.Sockets;
using System.Runtime.InteropServices;
using L2Balance.Balancer.Protocol;
using static L2Balance.Balancer.Interop.Packet;

namespace L2Balance.Balancer.Net;

/// <summary>Index and MAC of a network interface, looked up by name.</summary>
/// <remarks>
/// Through ioctl(SIOCGIFINDEX/SIOCGIFHWADDR) on a socket rather than /sys/class/net: sysfs shows the
/// namespace of whoever mounted it, a socket always answers for its own namespace (so a daemon,
/// or a lab thread that entered a namespace with setns(2), sees its own interfaces).
/// </remarks>
internal readonly record struct InterfaceInfo(string Name, int Index, MacAddress Mac)
{
    /// <summary>Looks <paramref name="interfaceName"/> up in the namespace of the calling thread.</summary>
    /// <exception cref="InterfaceNotFoundException">No such interface.</exception>
    public static InterfaceInfo Lookup(string interfaceName)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        return Lookup(socket.SafeHandle, interfaceName);
    }

    /// <summary>The index of any interface (lo included) in the namespace of the calling thread.</summary>
    /// <exception cref="InterfaceNotFoundException">No such interface.</exception>
    public static int LookupIndex(string interfaceName)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        Span<byte> ifreq = stackalloc byte[SizeOfIfreq];
        PacketStructs.WriteIfreqName(ifreq, interfaceName);
        Ioctl(socket.SafeHandle, SIOCGIFINDEX, "SIOCGIFINDEX", interfaceName, ifreq);
        return MemoryMarshal.Read<int>(ifreq[IFNAMSIZ..]);
    }

    /// <summary>Looks an Ethernet interface up in the namespace of <paramref name="socket"/>.</summary>
    /// <exception cref="InterfaceNotFoundException">No such interface.</exception>
    public static InterfaceInfo Lookup(SafeSocketHandle socket, string interfaceName)
    {
        Span<byte> ifreq = stackalloc byte[SizeOfIfreq];
        PacketStructs.WriteIfreqName(ifreq, interfaceName);
        Ioctl(socket, SIOCGIFINDEX, "SIOCGIFINDEX", interfaceName, ifreq);
        int index = MemoryMarshal.Read<int>(ifreq[IFNAMSIZ..]);

        PacketStructs.WriteIfreqName(ifreq, interfaceName);
        Ioctl(socket, SIOCGIFHWADDR, "SIOCGIFHWADDR", interfaceName, ifreq);
        ushort hardwareType = MemoryMarshal.Read<ushort>(ifreq[IFNAMSIZ..]);
        if (hardwareType != ARPHRD_ETHER)
        {
            throw new NotSupportedException($"Interface '{interfaceName}' is not Ethernet (ARPHRD {hardwareType}).");
        }

        return new InterfaceInfo(interfaceName, index, MacAddress.Read(ifreq[(IFNAMSIZ + 2)..]));
    }

    private static void Ioctl(SafeSocketHandle socket, uint request, string requestName, string interfaceName, Span<byte> ifreq)
    {
        if (ioctl(socket, request, ifreq) == 0)
        {
            return;
        }

        int errno = Marshal.GetLastPInvokeError();
        if (errno == Errno.ENODEV)
        {
            throw new InterfaceNotFoundException(interfaceName);
        }

        throw new IOException($"ioctl({requestName}, {interfaceName}): {Errno.Name(errno)}");
    }
}

/// <summary>The named network interface does not exist in this network namespace.</summary>
internal sealed class InterfaceNotFoundException : IOException
{
    public InterfaceNotFoundException(string interfaceName)
        : base($"Interface '{interfaceName}' does not exist in this network namespace (ENODEV).")
    {
        InterfaceName = interfaceName;
    }

    /// <summary>The name looked up.</summary>
    public string InterfaceName { get; }
}
