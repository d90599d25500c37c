using L2Balance.Balancer.Net;
using L2Balance.Balancer.Protocol;
using Xunit;
using static L2Balance.Balancer.Interop.Packet;

namespace L2Balance.L2Bal.Tests.Net;

public sealed class PacketStructsTests
{
    [Fact]
    public void SockaddrLl_Written_HasExactLayoutAndRoundTrips()
    {
        var b = Enumerable.Repeat((byte)0xAA, 24).ToArray();
        PacketStructs.WriteSockaddrLl(b, 0x0806, 0x01020304);

        // family 17 host order, protocol big-endian, ifindex host order, rest zero; bytes past 20 untouched.
        byte[] expected = [17, 0, 0x08, 0x06, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xAA, 0xAA, 0xAA, 0xAA];
        Assert.Equal(expected, b);

        b[10] = 4; // PACKET_OUTGOING
        Assert.Equal(((ushort)0x0806, 0x01020304, (byte)4), PacketStructs.ReadSockaddrLl(b));
    }

    [Fact]
    public void RingGeometry_AdvertFrames_AreSlotsOf2KiBInPages()
    {
        // 1,515-byte frames (an Ethernet payload and one byte to tell an oversize one) start 66 bytes into a slot.
        var ring = PacketStructs.RingGeometry(1515, 8 << 20, 4096);

        Assert.Equal(new TpacketReq(4096, 2048, 2048, 4096), ring);
    }

    [Theory]
    [InlineData(1515, 4096)]
    [InlineData(1515, 65536)]
    [InlineData(60, 4096)]
    [InlineData(1983, 4096)]
    [InlineData(9000, 4096)]
    public void RingGeometry_AnyFrameAndPage_SlotsHoldTheFrameAndTileBlocksOfWholePages(int maximumFrameLength, int pageSize)
    {
        var ring = PacketStructs.RingGeometry(maximumFrameLength, 1 << 20, pageSize);

        Assert.True(66 + maximumFrameLength <= ring.FrameSize, $"slot {ring.FrameSize} holds {maximumFrameLength} bytes after 66");
        Assert.Equal(0u, ring.FrameSize % TPACKET_ALIGNMENT);
        Assert.Equal(0u, ring.BlockSize % (uint)pageSize);
        Assert.Equal(0u, ring.BlockSize % ring.FrameSize);
        Assert.Equal(ring.BlockCount * (ring.BlockSize / ring.FrameSize), ring.FrameCount);
        Assert.InRange((long)ring.BlockSize * ring.BlockCount, 1 << 19, 1 << 20);
    }

    [Fact]
    public void PacketMreq_Written_HasExactLayout()
    {
        var b = new byte[16];
        PacketStructs.WritePacketMreq(b, 5, 3, MacAddress.Parse("02:c1:00:00:00:0a"));

        byte[] expected = [5, 0, 0, 0, 3, 0, 6, 0, 0x02, 0xc1, 0, 0, 0, 0x0a, 0, 0];
        Assert.Equal(expected, b);
    }

    [Fact]
    public void IfreqName_Written_IsNulTerminatedAndZeroFilled()
    {
        var b = Enumerable.Repeat((byte)0xAA, 40).ToArray();
        PacketStructs.WriteIfreqName(b, "eth0");

        Assert.Equal("eth0"u8.ToArray(), b[..4]);
        Assert.All(b[4..], x => Assert.Equal(0, x));
    }

    [Theory]
    [InlineData("")]
    [InlineData("0123456789abcdef")]
    [InlineData("eth 0")]
    [InlineData("a/b")]
    [InlineData("a:b")]
    [InlineData("..")]
    [InlineData("ethé")]
    public void InterfaceName_Invalid_Throws(string name)
    {
        Assert.Throws<ArgumentException>(() => PacketStructs.ValidateInterfaceName(name));
    }

    [Theory]
    [InlineData("eth0")]
    [InlineData("lo")]
    [InlineData("0123456789abcde")]
    [InlineData("br-lan.10")]
    public void InterfaceName_Valid_IsAccepted(string name)
    {
        PacketStructs.ValidateInterfaceName(name);
    }

    [Fact]
    public void NodeSetup_DesiredSysctls_AreTheDesignedOnes()
    {
        var unicast = NodeSetup.DesiredSysctls("/p", "eth0", multicastMode: false);
        var multicast = NodeSetup.DesiredSysctls("/p", "eth0", multicastMode: true);

        Assert.Equal(
            [("/p/net/ipv4/conf/eth0/arp_ignore", "1"), ("/p/net/ipv4/conf/eth0/arp_announce", "2"), ("/p/net/ipv4/conf/all/arp_announce", "2")],
            unicast);
        Assert.Equal(unicast.Append(("/p/net/ipv4/conf/eth0/drop_unicast_in_l2_multicast", "1")), multicast);
    }

    [Fact]
    public void NodeSetup_DesiredSysctlsWithAnIpv6Vip_AddIpv6sTwinAndDropArpsWhenAlone()
    {
        var dual = NodeSetup.DesiredSysctls("/p", "eth0", multicastMode: true, ipv4: true, ipv6: true);
        var alone = NodeSetup.DesiredSysctls("/p", "eth0", multicastMode: true, ipv4: false, ipv6: true);

        Assert.Equal(NodeSetup.DesiredSysctls("/p", "eth0", multicastMode: true).Append(("/p/net/ipv6/conf/eth0/drop_unicast_in_l2_multicast", "1")), dual);
        Assert.Equal([("/p/net/ipv6/conf/eth0/drop_unicast_in_l2_multicast", "1")], alone);
        Assert.Empty(NodeSetup.DesiredSysctls("/p", "eth0", multicastMode: false, ipv4: false, ipv6: true));
    }
}
