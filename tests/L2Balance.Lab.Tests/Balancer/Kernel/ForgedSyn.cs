using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using L2Balance.Lab;

namespace L2Balance.Lab.Tests.Balancer.Kernel;

/// <summary>
/// One bare TCP SYN sent through a raw socket of a lab host: a forged SYN, which the host's own socket of that tuple
/// (if any) knows nothing of; for the filter's handling of a SYN on a tuple that moved (docs/design.md#migration-filter).
/// </summary>
internal static class ForgedSyn
{
    public static void Send(LabHost from, IPEndPoint source, IPEndPoint destination)
    {
        var tcp = new byte[20];
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(0), (ushort)source.Port);
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(2), (ushort)destination.Port);
        BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(4), (uint)Random.Shared.Next());
        tcp[12] = 5 << 4;
        tcp[13] = 0x02;
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(14), 64240);
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(16), Checksum(source.Address, destination.Address, tcp));
        using var raw = from.OpenSocket(AddressFamily.InterNetwork, SocketType.Raw, ProtocolType.Tcp);
        raw.Bind(new IPEndPoint(source.Address, 0));
        raw.SendTo(tcp, new IPEndPoint(destination.Address, 0));
    }

    /// <summary>The TCP checksum over the IPv4 pseudo-header (addresses, protocol 6, length) and the segment.</summary>
    private static ushort Checksum(IPAddress source, IPAddress destination, byte[] segment)
    {
        var sum = new byte[12 + segment.Length];
        source.GetAddressBytes().CopyTo(sum, 0);
        destination.GetAddressBytes().CopyTo(sum, 4);
        sum[9] = 6;
        BinaryPrimitives.WriteUInt16BigEndian(sum.AsSpan(10), (ushort)segment.Length);
        segment.CopyTo(sum, 12);
        uint acc = 0;
        for (int i = 0; i < sum.Length; i += 2)
        {
            acc += (uint)((sum[i] << 8) | sum[i + 1]);
        }
        while (acc > 0xffff)
        {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        return (ushort)~acc;
    }
}
