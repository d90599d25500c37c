using System.Buffers.Binary;
using System.Net;
using L2Balance.Proxy.Migration;
using Xunit;

namespace L2Balance.Proxy.Tests.Migration;

public sealed class TcpAckTests
{
    private static readonly IPEndPoint Vip = IPEndPoint.Parse("198.18.0.10:1080");
    private static readonly IPEndPoint Client = IPEndPoint.Parse("198.18.64.7:40001");
    private static readonly IPEndPoint Vip6 = IPEndPoint.Parse("[fdc6:1200::10]:1080");
    private static readonly IPEndPoint Client6 = IPEndPoint.Parse("[fdc6:1200:40::7]:40001");

    [Fact]
    public void Build_WithTimestamps_LaysOutTheHeaderAsLinuxDoes()
    {
        var segment = new byte[TcpAck.TimestampLength];

        var length = TcpAck.Build(segment, Vip, Client, new TcpAckPoint(0x01020304, 0x0A0B0C0D, 502, 0x11223344));

        Assert.Equal(32, length);
        Assert.Equal((1080, 40001), (BinaryPrimitives.ReadUInt16BigEndian(segment), BinaryPrimitives.ReadUInt16BigEndian(segment.AsSpan(2))));
        Assert.Equal((0x01020304u, 0x0A0B0C0Du), (BinaryPrimitives.ReadUInt32BigEndian(segment.AsSpan(4)), BinaryPrimitives.ReadUInt32BigEndian(segment.AsSpan(8))));
        Assert.Equal((0x80, 0x10, 502), (segment[12], segment[13], BinaryPrimitives.ReadUInt16BigEndian(segment.AsSpan(14))));
        Assert.Equal(new byte[] { 1, 1, 8, 10, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0 }, segment[20..]);
        // Computed independently (Python, RFC 1071 over the pseudo-header and the segment).
        Assert.Equal(0xa993, BinaryPrimitives.ReadUInt16BigEndian(segment.AsSpan(16)));
    }

    [Fact]
    public void Build_Ipv6WithoutTimestamps_ChecksumsOverTheIpv6PseudoHeader()
    {
        var segment = new byte[TcpAck.TimestampLength];

        var length = TcpAck.Build(segment, Vip6, Client6, new TcpAckPoint(0xFFFFFFFF, 1, 65535, null));

        Assert.Equal(20, length);
        Assert.Equal(0x50, segment[12]);
        Assert.Equal(0xef75, BinaryPrimitives.ReadUInt16BigEndian(segment.AsSpan(16)));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BuildPacket_EitherFamily_IsASegmentTheCaptureParserReadsBack(bool v6)
    {
        var packet = new byte[TcpAck.MaxPacketLength];
        var (local, remote) = v6 ? (Vip6, Client6) : (Vip, Client);

        var length = TcpAck.BuildPacket(packet, local, remote, new TcpAckPoint(7, 9, 100, 5));

        Assert.Equal((v6 ? 40 : 20) + 32, length);
        var header = TcpSegments.TryParse(packet.AsSpan(0, length));
        Assert.NotNull(header);
        Assert.Equal(InboundFlow.Of(local, remote), header.Value.Flow);
        Assert.Equal((7u, 0, false), (header.Value.Seq, header.Value.PayloadLength, header.Value.FinOrRst));
        // The checksum field makes the sum over pseudo-header and segment come out as 0xFFFF, i.e. its complement 0.
        var tcp = packet.AsSpan(v6 ? 40 : 20, 32);
        Assert.Equal(0, TcpAck.Checksum(tcp, local.Address, remote.Address));
    }

    [Fact]
    public void Build_AddressesOfTwoFamilies_Throws()
    {
        Assert.Throws<ArgumentException>(() => TcpAck.Build(new byte[32], Vip, Client6, default));
    }

    [Theory]
    [InlineData(1000u, 64000u, 1000u, (byte)0, 64000)] // nothing received since the announcement
    [InlineData(1000u, 64000u, 1256u, (byte)0, 63744)] // 256 bytes appended since
    [InlineData(1000u, 640000u, 1000u, (byte)7, 5000)] // scaled by 2^7
    [InlineData(1000u, 64000u, 70000u, (byte)0, 0)] // past the announced edge: never negative
    [InlineData(0xFFFFFF00u, 0x200u, 0x80u, (byte)0, 0x80)] // across the wrap of the sequence space
    [InlineData(0u, 0x7FFFFFFFu, 0u, (byte)0, 65535)] // unscaled field: at most 65,535
    public void WindowField_AnnouncedWindowAndBytesSince_IsWhatIsLeftScaled(uint rcvWup, uint rcvWnd, uint rcvNxt, byte scale, int expected)
    {
        Assert.Equal(expected, TcpAckPoint.WindowField(rcvWup, rcvWnd, rcvNxt, scale));
    }
}
