using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Protocol;

public class MacAddressTests
{
    [Theory]
    [InlineData("02:00:00:00:00:01", 0x020000000001UL)]
    [InlineData("ff:ff:ff:ff:ff:ff", 0xFFFFFFFFFFFFUL)]
    [InlineData("01:00:5e:00:00:0a", 0x01005E00000AUL)]
    [InlineData("00:00:00:00:00:00", 0UL)]
    public void Parse_CanonicalText_FormatsBackTheSame(string text, ulong value)
    {
        var mac = MacAddress.Parse(text);
        Assert.Equal(value, mac.Value);
        Assert.Equal(text, mac.ToString());
    }

    [Fact]
    public void Parse_DashesAndUpperCase_AreAccepted()
    {
        Assert.Equal(MacAddress.Parse("02:c1:00:00:00:0a"), MacAddress.Parse("02-C1-00-00-00-0A"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("02:00:00:00:00")]
    [InlineData("02:00:00:00:00:01:")]
    [InlineData("02:00:00-00:00:01")]
    [InlineData("02.00.00.00.00.01")]
    [InlineData("0g:00:00:00:00:01")]
    [InlineData("+2:00:00:00:00:01")]
    [InlineData(" 2:00:00:00:00:01")]
    public void Parse_MalformedText_IsRejected(string text)
    {
        Assert.False(MacAddress.TryParse(text, out _));
        Assert.Throws<FormatException>(() => MacAddress.Parse(text));
    }

    [Fact]
    public void MacAddress_NullOrWiderThan48Bits_IsRejected()
    {
        Assert.False(MacAddress.TryParse(null, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MacAddress(1UL << 48));
    }

    [Theory]
    [InlineData("02:00:00:00:00:01", false, true)]
    [InlineData("00:16:3e:00:00:01", false, false)]
    [InlineData("01:00:5e:7f:00:01", true, false)]
    [InlineData("ff:ff:ff:ff:ff:ff", true, true)]
    [InlineData("03:00:00:00:00:00", true, true)]
    public void Flags_GroupAndLocalBits_AreReported(string text, bool multicast, bool local)
    {
        var mac = MacAddress.Parse(text);
        Assert.Equal(multicast, mac.IsMulticast);
        Assert.Equal(local, mac.IsLocallyAdministered);
    }

    [Fact]
    public void WireBytes_ReadAndWritten_AreInNetworkOrder()
    {
        byte[] wire = [0x02, 0xc1, 0x00, 0x00, 0x00, 0x0a];
        var mac = MacAddress.Read(wire);
        Assert.Equal("02:c1:00:00:00:0a", mac.ToString());
        var back = new byte[6];
        mac.WriteTo(back);
        Assert.Equal(wire, back);
        Assert.True(MacAddress.Broadcast.IsBroadcast);
        Assert.Throws<ArgumentException>(() => MacAddress.Read(new byte[5]));
        Assert.Throws<ArgumentException>(() => mac.WriteTo(new byte[5]));
    }
}
