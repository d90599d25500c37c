using System.Net;
using Xunit;

namespace L2Balance.Lab.Tests.Lab;

/// <summary>The lab client's RFC 1928 section 7 UDP header, for both families.</summary>
public sealed class Socks5ClientTests
{
    [Theory]
    [InlineData("198.18.128.2", 7001, 10, 1)]
    [InlineData("fdc6:1200:128::2", 7001, 22, 4)]
    public void WrapUdp_DestinationOfEitherFamily_HeaderOfItsTypeAndUnwrapReturnsThePayload(string address, int port, int header, byte type)
    {
        var destination = new IPEndPoint(IPAddress.Parse(address), port);
        var datagram = Socks5Client.WrapUdp(destination, "echo"u8);

        Assert.Equal(header, Socks5Client.UdpHeaderLength(destination));
        Assert.Equal(header + 4, datagram.Length);
        Assert.Equal([0, 0, 0, type], datagram[..4]);
        Assert.Equal(destination.Address.GetAddressBytes(), datagram[4..(header - 2)]);
        Assert.Equal([0x1b, 0x59], datagram[(header - 2)..header]);
        Assert.Equal("echo"u8.ToArray(), Socks5Client.UnwrapUdp(datagram).ToArray());
    }

    [Fact]
    public void UnwrapUdp_TruncatedIpv6Header_IsEmpty()
    {
        var datagram = Socks5Client.WrapUdp(new IPEndPoint(IPAddress.Parse("fdc6:1200:128::2"), 7001), []);
        Assert.True(Socks5Client.UnwrapUdp(datagram.AsSpan(0, 21)).IsEmpty);
    }
}
