using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace L2Balance.Proxy.Migration;

/// <summary>
/// Where a restored leg stands at Go, read in repair mode: the acknowledgement it owes its end
/// (docs/design.md#the-pause). <paramref name="Seq"/> is snd_nxt (every queued byte counts as sent in
/// repair mode), <paramref name="Ack"/> rcv_nxt after the appends, <paramref name="Window"/> the field
/// as the end must read it (already scaled), <paramref name="TsVal"/> the connection's timestamp clock
/// when timestamps are on.
/// </summary>
public readonly record struct TcpAckPoint(uint Seq, uint Ack, ushort Window, uint? TsVal)
{
    /// <summary>
    /// The window field for a receive window whose right edge was announced at
    /// <paramref name="rcvWup"/> + <paramref name="rcvWnd"/>: what is left of it past <paramref name="rcvNxt"/>,
    /// scaled down by <paramref name="rcvWscale"/> (rounding down never announces more than the old socket did).
    /// </summary>
    public static ushort WindowField(uint rcvWup, uint rcvWnd, uint rcvNxt, byte rcvWscale)
    {
        var left = (int)(rcvWup + rcvWnd - rcvNxt);
        return left <= 0 ? (ushort)0 : (ushort)Math.Min(ushort.MaxValue, (uint)left >> Math.Min(rcvWscale, TcpLegState.MaxWscale));
    }
}

/// <summary>
/// A pure TCP acknowledgement, built byte by byte (RFC 9293 section 3.1; the timestamps option of RFC 7323
/// section 3.2 behind two NOPs, as Linux lays it out). Pure: the checksum covers the pseudo-header of the
/// segment's family.
/// </summary>
public static class TcpAck
{
    /// <summary>Header without options.</summary>
    public const int BaseLength = 20;

    /// <summary>Header with NOP, NOP, timestamps.</summary>
    public const int TimestampLength = 32;

    /// <summary>
    /// Writes the segment <paramref name="local"/> → <paramref name="remote"/> into <paramref name="segment"/>
    /// and returns its length. The timestamps option carries TSecr 0: no round-trip sample for the end
    /// (RFC 7323 section 3.2 allows a zero TSecr; Linux then times the acknowledged data by its own send time).
    /// </summary>
    public static int Build(Span<byte> segment, IPEndPoint local, IPEndPoint remote, TcpAckPoint point)
    {
        ArgumentNullException.ThrowIfNull(local);
        ArgumentNullException.ThrowIfNull(remote);
        if (local.AddressFamily != remote.AddressFamily)
        {
            throw new ArgumentException($"an acknowledgement from {local} cannot go to {remote}", nameof(remote));
        }

        var length = point.TsVal is null ? BaseLength : TimestampLength;
        var tcp = segment[..length];
        tcp.Clear();
        BinaryPrimitives.WriteUInt16BigEndian(tcp, (ushort)local.Port);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], (ushort)remote.Port);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], point.Seq);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], point.Ack);
        tcp[12] = (byte)(length / 4 << 4);
        tcp[13] = 0x10; // ACK
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], point.Window);
        if (point.TsVal is { } tsVal)
        {
            tcp[20] = 1;
            tcp[21] = 1;
            tcp[22] = 8;
            tcp[23] = 10;
            BinaryPrimitives.WriteUInt32BigEndian(tcp[24..], tsVal);
        }

        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], Checksum(tcp, local.Address, remote.Address));
        return length;
    }

    /// <summary>Longest packet <see cref="BuildPacket"/> writes: an IPv6 header and the segment with timestamps.</summary>
    public const int MaxPacketLength = 40 + TimestampLength;

    /// <summary>
    /// The whole IP packet for a raw socket of protocol IPPROTO_RAW (IP_HDRINCL, IPV6_HDRINCL): the segment behind
    /// an IPv4 header (DF, TTL 64; the kernel fills its checksum and identification) or an IPv6 one (hop limit 64).
    /// </summary>
    public static int BuildPacket(Span<byte> packet, IPEndPoint local, IPEndPoint remote, TcpAckPoint point)
    {
        ArgumentNullException.ThrowIfNull(local);
        ArgumentNullException.ThrowIfNull(remote);
        var v4 = local.AddressFamily == AddressFamily.InterNetwork;
        var header = v4 ? 20 : 40;
        var length = header + Build(packet[header..], local, remote, point);
        var ip = packet[..header];
        ip.Clear();
        if (v4)
        {
            ip[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)length);
            ip[6] = 0x40; // DF
            ip[8] = 64;
            ip[9] = 6;
            local.Address.TryWriteBytes(ip[12..], out _);
            remote.Address.TryWriteBytes(ip[16..], out _);
        }
        else
        {
            ip[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)(length - header));
            ip[6] = 6;
            ip[7] = 64;
            local.Address.TryWriteBytes(ip[8..], out _);
            remote.Address.TryWriteBytes(ip[24..], out _);
        }

        return length;
    }

    /// <summary>The Internet checksum (RFC 1071) of <paramref name="tcp"/> (its checksum field zero) behind its family's pseudo-header.</summary>
    public static ushort Checksum(ReadOnlySpan<byte> tcp, IPAddress source, IPAddress destination)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        Span<byte> addresses = stackalloc byte[32];
        source.TryWriteBytes(addresses, out var n);
        destination.TryWriteBytes(addresses[n..], out var m);
        return L2Balance.Common.Net.InternetChecksum.Compute(addresses[..n], addresses[n..(n + m)], 6, tcp);
    }
}

/// <summary>
/// Sends the acknowledgement a restored leg owes its end, once, right after its thaw (docs/design.md#the-pause):
/// bytes appended from the capture were never acknowledged on the wire, and the thaw's window probe (sequence
/// snd_una − 1) is out of window for the end, which answers it without reading its acknowledgement. Until a
/// valid segment comes the end holds its next small write (Nagle) or resends on its timer. A raw socket per
/// family of protocol IPPROTO_RAW (it writes the IP header, so the source is the VIP, and it receives
/// nothing), marked like the restored sockets; needs CAP_NET_RAW, as the capture does.
/// </summary>
internal sealed class TcpAckSender(uint mark) : IDisposable
{
    private const ProtocolType IpProtoRaw = (ProtocolType)255;
    private readonly Dictionary<AddressFamily, Socket?> _sockets = [];

    /// <summary>Sends one acknowledgement; false (nothing sent) when the raw socket cannot be opened or the send fails.</summary>
    public bool Send(IPEndPoint local, IPEndPoint remote, TcpAckPoint point)
    {
        Span<byte> segment = stackalloc byte[TcpAck.MaxPacketLength];
        var length = TcpAck.BuildPacket(segment, local, remote, point);
        lock (_sockets)
        {
            if (!_sockets.TryGetValue(local.AddressFamily, out var socket))
            {
                socket = Open(local.AddressFamily);
                _sockets[local.AddressFamily] = socket;
            }

            try
            {
                return socket is not null && socket.SendTo(segment[..length], SocketFlags.None, new IPEndPoint(remote.Address, 0)) == length;
            }
            catch (SocketException)
            {
                return false;
            }
        }
    }

    public void Dispose()
    {
        lock (_sockets)
        {
            foreach (var socket in _sockets.Values)
            {
                socket?.Dispose();
            }

            _sockets.Clear();
        }
    }

    /// <summary>A raw socket that sends whole IP packets of <paramref name="family"/>, or null without CAP_NET_RAW.</summary>
    private Socket? Open(AddressFamily family)
    {
        Socket? socket = null;
        try
        {
            socket = new Socket(family, SocketType.Raw, IpProtoRaw);
            TcpRepair.Mark(socket, mark);
            return socket;
        }
        catch (Exception e) when (e is SocketException or MigrationException)
        {
            socket?.Dispose();
            return null;
        }
    }
}
