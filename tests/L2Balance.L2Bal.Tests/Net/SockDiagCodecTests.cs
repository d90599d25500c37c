using System.Buffers.Binary;
using System.Net;
using L2Balance.Balancer.Net;
using Xunit;
using static L2Balance.Balancer.Interop.Netlink;

namespace L2Balance.L2Bal.Tests.Net;

public sealed class SockDiagCodecTests
{
    [Fact]
    public void ListenDump_Written_HasExactLayout()
    {
        var buffer = new byte[SockDiagCodec.RequestLength];
        var n = SockDiagCodec.WriteDump(buffer, AF_INET, sequence: 0x01020304, SockDiagCodec.ListenStates);

        var expected = new byte[72];
        // nlmsghdr: len 72, type SOCK_DIAG_BY_FAMILY 20, flags REQUEST|DUMP = 0x0301, seq, pid 0
        byte[] header = [72, 0, 0, 0, 20, 0, 0x01, 0x03, 0x04, 0x03, 0x02, 0x01, 0, 0, 0, 0];
        header.CopyTo(expected, 0);
        // inet_diag_req_v2: AF_INET, IPPROTO_TCP, no extensions, pad, states 1 << TCP_LISTEN (0x400); sockid all zero
        byte[] request = [2, 6, 0, 0, 0x00, 0x04, 0, 0];
        request.CopyTo(expected, 16);
        Assert.Equal(72, n);
        Assert.Equal(expected, buffer);
    }

    [Fact]
    public void ListenDump_OtherFamily_IsRefused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => SockDiagCodec.WriteDump(new byte[SockDiagCodec.RequestLength], 17, 1, SockDiagCodec.ListenStates));

    [Fact]
    public void Read_ListenerMessages_GiveEachAddressAndPortThenDone()
    {
        var datagram = Concat(
            Message(7, SOCK_DIAG_BY_FAMILY, DiagMsg(AF_INET, 1080, IPAddress.Parse("198.18.0.10"))),
            Message(7, SOCK_DIAG_BY_FAMILY, DiagMsg(AF_INET6, 22, IPAddress.IPv6Any)),
            Message(7, NLMSG_DONE, new byte[4]));
        var seen = new List<(IPAddress, int)>();

        var status = SockDiagCodec.Read(datagram, 7, (InetDiagSocket s) => seen.Add((s.Local.Address, s.Local.Port)), out _);

        Assert.Equal(NetlinkDumpStatus.Done, status);
        Assert.Equal([(IPAddress.Parse("198.18.0.10"), 1080), (IPAddress.IPv6Any, 22)], seen);
    }

    [Fact]
    public void LiveDump_Written_AsksForEveryStateButTimeWaitCloseAndListen()
    {
        var buffer = new byte[SockDiagCodec.RequestLength];
        SockDiagCodec.WriteDump(buffer, AF_INET6, 9, SockDiagCodec.LiveStates);

        // States 1-5 (ESTABLISHED .. FIN_WAIT2), 8 CLOSE_WAIT, 9 LAST_ACK, 11 CLOSING: 0b1011_0011_1110 = 0xb3e.
        Assert.Equal(10, buffer[16]);
        Assert.Equal(0xb3eu, BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(20)));
    }

    [Fact]
    public void Read_ConnectionMessages_GiveLocalAndRemoteEndpointAndState()
    {
        var connection = DiagMsg(AF_INET, 1080, IPAddress.Parse("198.18.0.10"));
        connection[1] = 8; // CLOSE_WAIT
        BinaryPrimitives.WriteUInt32LittleEndian(connection.AsSpan(68), 4242); // idiag_inode
        BinaryPrimitives.WriteUInt16BigEndian(connection.AsSpan(6), 40415);
        IPAddress.Parse("198.18.64.62").GetAddressBytes().CopyTo(connection, 24);
        var mapped = DiagMsg(AF_INET6, 1080, IPAddress.Parse("::ffff:198.18.0.10"));
        BinaryPrimitives.WriteUInt16BigEndian(mapped.AsSpan(6), 5000);
        IPAddress.Parse("::ffff:198.18.64.1").GetAddressBytes().CopyTo(mapped, 24);
        var seen = new List<InetDiagSocket>();

        var status = SockDiagCodec.Read(Concat(Message(3, SOCK_DIAG_BY_FAMILY, connection), Message(3, SOCK_DIAG_BY_FAMILY, mapped), Message(3, NLMSG_DONE, new byte[4])),
            3, (InetDiagSocket s) => seen.Add(s), out _);

        Assert.Equal(NetlinkDumpStatus.Done, status);
        Assert.Equal(
            [
                new InetDiagSocket(new IPEndPoint(IPAddress.Parse("198.18.0.10"), 1080), new IPEndPoint(IPAddress.Parse("198.18.64.62"), 40415), 8, 4242),
                new InetDiagSocket(new IPEndPoint(IPAddress.Parse("::ffff:198.18.0.10"), 1080), new IPEndPoint(IPAddress.Parse("::ffff:198.18.64.1"), 5000), TCP_LISTEN, 0),
            ],
            seen);
    }

    [Fact]
    public void Read_WithoutDone_AsksForMoreAndSkipsOtherSequences()
    {
        var datagram = Concat(
            Message(6, SOCK_DIAG_BY_FAMILY, DiagMsg(AF_INET, 9, IPAddress.Loopback)),
            Message(6, NLMSG_DONE, new byte[4]),
            Message(7, SOCK_DIAG_BY_FAMILY, DiagMsg(AF_INET, 1080, IPAddress.Any)));
        var seen = new List<(IPAddress, int)>();

        Assert.Equal(NetlinkDumpStatus.More, SockDiagCodec.Read(datagram, 7, (InetDiagSocket s) => seen.Add((s.Local.Address, s.Local.Port)), out _));
        Assert.Equal([(IPAddress.Any, 1080)], seen);
    }

    [Fact]
    public void Read_Error_GivesTheErrno()
    {
        var body = new byte[20];
        BinaryPrimitives.WriteInt32LittleEndian(body, -13);
        Assert.Equal(NetlinkDumpStatus.Error, SockDiagCodec.Read(Message(3, NLMSG_ERROR, body), 3, (InetDiagSocket _) => { }, out var errno));
        Assert.Equal(13, errno);
    }

    [Theory]
    [InlineData(8)]
    [InlineData(15)]
    [InlineData(40)]
    public void Read_Truncated_IsInvalid(int keep)
    {
        var whole = Message(1, SOCK_DIAG_BY_FAMILY, DiagMsg(AF_INET, 1080, IPAddress.Any));
        Assert.Equal(NetlinkDumpStatus.Invalid, SockDiagCodec.Read(whole.AsSpan(0, keep), 1, (InetDiagSocket _) => { }, out _));
    }

    [Fact]
    public void Read_LengthBelowTheHeader_IsInvalidNotALoop()
    {
        var datagram = Message(1, SOCK_DIAG_BY_FAMILY, new byte[0]);
        BinaryPrimitives.WriteUInt32LittleEndian(datagram, 0);
        Assert.Equal(NetlinkDumpStatus.Invalid, SockDiagCodec.Read(datagram, 1, (InetDiagSocket _) => { }, out _));
    }

    [Fact]
    public void Read_RandomBytes_NeverThrow()
    {
        var random = new Random(5);
        var buffer = new byte[200];
        for (var i = 0; i < 20_000; i++)
        {
            random.NextBytes(buffer);
            var length = random.Next(buffer.Length + 1);
            if (length >= 16 && random.Next(2) == 0)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(buffer, (uint)random.Next(16, length + 1));
            }
            _ = SockDiagCodec.Read(buffer.AsSpan(0, length), BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(8)), (InetDiagSocket _) => { }, out _);
        }
    }

    private static byte[] DiagMsg(byte family, int port, IPAddress address)
    {
        var body = new byte[SizeOfInetDiagMsg];
        body[0] = family;
        body[1] = TCP_LISTEN;
        BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(4), (ushort)port);
        address.GetAddressBytes().CopyTo(body, 8);
        return body;
    }

    private static byte[] Message(uint sequence, ushort type, byte[] body)
    {
        var message = new byte[NLMSG_HDRLEN + body.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(message, (uint)message.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(4), type);
        BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(6), 2);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(8), sequence);
        body.CopyTo(message, NLMSG_HDRLEN);
        return message;
    }

    private static byte[] Concat(params byte[][] parts) => [.. parts.SelectMany(p => p)];
}
