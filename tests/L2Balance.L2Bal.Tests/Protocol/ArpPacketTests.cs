using System.Net;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Protocol;

public class ArpPacketTests
{
    private static readonly MacAddress Client = MacAddress.Parse("02:00:00:00:00:64");
    private static readonly MacAddress Own = MacAddress.Parse("02:00:00:00:00:01");
    private static readonly MacAddress Cluster = MacAddress.Parse("01:00:5e:00:00:0a");
    private static readonly IPAddress Vip = IPAddress.Parse("198.18.0.10");
    private static readonly IPAddress ClientIp = IPAddress.Parse("198.18.0.100");

    // who-has 198.18.0.10 tell 198.18.0.100, as struct.pack('!HHBBH6s4s6s4s', 1, 0x0800, 6, 4, 1, ...)
    private static readonly byte[] RequestBytes =
    [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x64, 198, 18, 0, 100,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 198, 18, 0, 10,
    ];

    [Fact]
    public void Parse_RequestFixture_GivesEveryField()
    {
        Assert.True(ArpPacket.TryParse(RequestBytes, out var arp, out var reason));
        Assert.Equal(ArpRejection.None, reason);
        Assert.Equal(new ArpPacket(ArpOperation.Request, Client, ClientIp, MacAddress.Zero, Vip), arp);
        Assert.True(arp.IsRequestFor(Vip));
        Assert.False(arp.IsRequestFor(ClientIp));
        Assert.False((arp with { SenderMac = MacAddress.Broadcast }).IsRequestFor(Vip));
        Assert.False((arp with { Operation = ArpOperation.Reply }).IsRequestFor(Vip));
    }

    [Fact]
    public void Parse_WrittenPacketWithPadding_RoundTripsIgnoringPadding()
    {
        Assert.True(ArpPacket.TryParse(RequestBytes, out var arp, out _));
        var buffer = new byte[ArpPacket.Length + 18];
        Assert.Equal(ArpPacket.Length, arp.Write(buffer));
        Assert.Equal(RequestBytes, buffer[..ArpPacket.Length]);
        Assert.True(ArpPacket.TryParse(buffer, out var again, out _));
        Assert.Equal(arp, again);
    }

    [Fact]
    public void Parse_EveryStrictPrefix_IsTruncated()
    {
        for (int n = 0; n < RequestBytes.Length; n++)
        {
            Assert.False(ArpPacket.TryParse(RequestBytes.AsSpan(0, n), out _, out var reason));
            Assert.Equal(ArpRejection.Truncated, reason);
        }
    }

    [Theory]
    [InlineData(1, 0x06, (int)ArpRejection.BadHardwareType)]
    [InlineData(2, 0x86, (int)ArpRejection.BadProtocolType)]
    [InlineData(4, 0x10, (int)ArpRejection.BadHardwareLength)]
    [InlineData(5, 0x10, (int)ArpRejection.BadProtocolLength)]
    [InlineData(7, 0x03, (int)ArpRejection.BadOperation)]
    [InlineData(7, 0x00, (int)ArpRejection.BadOperation)]
    public void Parse_EachBadField_HasItsReason(int offset, byte value, int expected)
    {
        var bytes = (byte[])RequestBytes.Clone();
        bytes[offset] = value;
        Assert.False(ArpPacket.TryParse(bytes, out var arp, out var reason));
        Assert.Equal((ArpRejection)expected, reason);
        Assert.Equal(default, arp);
    }

    [Fact]
    public void Reply_ToAWhoHas_AnswersClusterMacFromOwnMac()
    {
        Assert.True(ArpPacket.TryParse(RequestBytes, out var request, out _));
        var frame = new byte[128];
        Assert.Equal(60, ArpPacket.WriteReplyFrame(frame, request, Own, Cluster));

        Assert.True(EthernetFrame.TryParse(frame.AsSpan(0, 60), out var eth, out _));
        Assert.Equal(new EthernetHeader(Client, Own, EthernetFrame.EtherTypeArp), eth);
        Assert.True(ArpPacket.TryParse(frame.AsSpan(14, 46), out var reply, out _));
        Assert.Equal(new ArpPacket(ArpOperation.Reply, Cluster, Vip, Client, ClientIp), reply);
        Assert.All(frame[ArpPacket.FrameLength..60], b => Assert.Equal(0, b));
    }

    [Fact]
    public void Gratuitous_Built_HasTargetMacEqualToSenderMac()
    {
        // Linux arp_is_garp(): a reply is gratuitous only when target MAC == sender MAC (and
        // target IP == sender IP); only then does it replace a fresh neighbour entry at once.
        byte[] expected =
        [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02,
            0x01, 0x00, 0x5e, 0x00, 0x00, 0x0a, 198, 18, 0, 10,
            0x01, 0x00, 0x5e, 0x00, 0x00, 0x0a, 198, 18, 0, 10,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        var frame = new byte[60];
        Assert.Equal(60, ArpPacket.WriteGratuitousFrame(frame, Own, Cluster, Vip));
        Assert.Equal(expected, frame);
        Assert.Equal(new ArpPacket(ArpOperation.Reply, Cluster, Vip, Cluster, Vip), ArpPacket.Gratuitous(Cluster, Vip));
    }

    [Fact]
    public void Builders_SegmentBreakingInput_IsRefused()
    {
        Assert.True(ArpPacket.TryParse(RequestBytes, out var request, out _));
        var frame = new byte[60];
        var unicastCluster = MacAddress.Parse("02:c1:00:00:00:0a");
        Assert.Throws<ArgumentException>(() => ArpPacket.WriteGratuitousFrame(frame, unicastCluster, unicastCluster, Vip));
        Assert.Throws<ArgumentException>(() => ArpPacket.WriteReplyFrame(frame, request, unicastCluster, unicastCluster));
        Assert.Throws<ArgumentException>(() => ArpPacket.WriteGratuitousFrame(frame, Cluster, unicastCluster, Vip));
        Assert.Throws<ArgumentException>(() => ArpPacket.WriteGratuitousFrame(new byte[59], Own, Cluster, Vip));
        Assert.Throws<ArgumentException>(() => ArpPacket.Gratuitous(Cluster, IPAddress.IPv6Loopback));
        Assert.Throws<ArgumentException>(() => ArpPacket.Reply(ArpPacket.Gratuitous(Cluster, Vip), Cluster));
    }

    [Fact]
    public void Parse_RandomGarbage_NeverThrows()
    {
        var rng = new Random(826);
        var buffer = new byte[64];
        for (int i = 0; i < 20_000; i++)
        {
            int n = rng.Next(buffer.Length + 1);
            rng.NextBytes(buffer);
            if (i % 2 == 0)
            {
                RequestBytes.AsSpan(0, Math.Min(n, 6)).CopyTo(buffer); // get past the first checks often
            }

            bool ok = ArpPacket.TryParse(buffer.AsSpan(0, n), out var arp, out var reason);
            Assert.Equal(ok, reason == ArpRejection.None);
            if (ok)
            {
                var again = new byte[ArpPacket.Length];
                arp.Write(again);
                Assert.Equal(buffer[..ArpPacket.Length], again);
            }

            bool eth = EthernetFrame.TryParse(buffer.AsSpan(0, n), out _, out var ethReason);
            Assert.Equal(eth, ethReason == EthernetRejection.None);
        }
    }
}
