using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Protocol;

public class EthernetFrameTests
{
    private static readonly EthernetHeader Sample = new(
        MacAddress.Broadcast, MacAddress.Parse("02:00:00:00:00:01"), EthernetFrame.EtherTypeArp);

    [Fact]
    public void Frame_Written_RoundTrips()
    {
        var buffer = new byte[EthernetFrame.HeaderLength];
        Assert.Equal(14, EthernetFrame.Write(Sample, buffer));
        Assert.Equal(
            new byte[] { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06 },
            buffer);
        Assert.True(EthernetFrame.TryParse(buffer, out var parsed, out var reason));
        Assert.Equal(EthernetRejection.None, reason);
        Assert.Equal(Sample, parsed);
    }

    [Fact]
    public void Parse_EveryStrictPrefix_IsTruncated()
    {
        var buffer = new byte[EthernetFrame.HeaderLength];
        EthernetFrame.Write(Sample, buffer);
        for (int n = 0; n < buffer.Length; n++)
        {
            Assert.False(EthernetFrame.TryParse(buffer.AsSpan(0, n), out _, out var reason));
            Assert.Equal(EthernetRejection.Truncated, reason);
        }
    }

    [Theory]
    [InlineData(0x8100, (int)EthernetRejection.VlanTagged)]
    [InlineData(0x88A8, (int)EthernetRejection.VlanTagged)]
    [InlineData(0x05DC, (int)EthernetRejection.NotEthernetII)]
    [InlineData(0x0000, (int)EthernetRejection.NotEthernetII)]
    public void Parse_VlanTagOrLengthField_IsRejected(int type, int expected)
    {
        var buffer = new byte[64];
        EthernetFrame.Write(Sample with { EtherType = (ushort)type }, buffer);
        Assert.False(EthernetFrame.TryParse(buffer, out var header, out var reason));
        Assert.Equal((EthernetRejection)expected, reason);
        Assert.Equal(default, header);
    }

    [Fact]
    public void Write_IntoTooSmallSpan_Throws()
    {
        Assert.Throws<ArgumentException>(() => EthernetFrame.Write(Sample, new byte[13]));
    }
}
