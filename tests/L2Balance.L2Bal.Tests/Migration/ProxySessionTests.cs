using System.Net;
using System.Net.Sockets;
using L2Balance.Balancer.Migration;
using Xunit;

namespace L2Balance.L2Bal.Tests.Migration;

public class ProxySessionTests
{
    [Fact]
    public void TryParse_ConnectLine_GivesBothLegsInboundFlows()
    {
        var s = MigrationTestData.Line("session 17 connect 198.18.1.5:40001 198.18.0.10:1080 198.18.0.10:33001 198.18.2.7:443 4096 movable");

        Assert.Equal("17", s.Id);
        Assert.Equal(SessionKind.Connect, s.Kind);
        Assert.Equal(4096, s.HeldBytes);
        Assert.Null(s.Stays);
        Assert.Equal(
            ["tcp . 198.18.1.5 . 40001 . 198.18.0.10 . 1080", "tcp . 198.18.2.7 . 443 . 198.18.0.10 . 33001"],
            s.InboundFlows().Select(f => f.NftElement()));
    }

    [Fact]
    public void TryParse_UdpLine_TheRelayLegIsUdp()
    {
        var s = MigrationTestData.Line("session u-3 udp 198.18.1.5:40001 198.18.0.10:1080 198.18.0.10:33010 198.18.1.5:5353 0 stays=not-single-ip");

        Assert.Equal(SessionKind.Udp, s.Kind);
        Assert.Equal("not-single-ip", s.Stays);
        Assert.Equal([ProtocolType.Tcp, ProtocolType.Udp], s.InboundFlows().Select(f => f.Protocol));
        Assert.Equal(new IPEndPoint(IPAddress.Parse("198.18.0.10"), 33010), s.InboundFlows()[1].Destination);
    }

    [Fact]
    public void TryParse_MovableUdpLine_FlowsAreTheControlConnectionAndTheClientsDatagramsToTheRelay()
    {
        var s = MigrationTestData.Line("session 12 udp 198.18.1.5:40001 198.18.0.10:1080 198.18.0.10:33010 198.18.1.5:5353 0 movable");

        Assert.Null(s.Stays);
        Assert.Equal(
            ["tcp . 198.18.1.5 . 40001 . 198.18.0.10 . 1080", "udp . 198.18.1.5 . 5353 . 198.18.0.10 . 33010"],
            s.InboundFlows().Select(f => f.NftElement()));
    }

    [Theory]
    [InlineData("")]
    [InlineData("session 1 connect 198.18.1.5:40001 198.18.0.10:1080 198.18.0.10:33001 198.18.2.7:443 0")]
    [InlineData("session 1 connect 198.18.1.5:40001 198.18.0.10:1080 198.18.0.10:33001 198.18.2.7:443 0 movable extra")]
    [InlineData("sessions 1 connect 198.18.1.5:40001 198.18.0.10:1080 198.18.0.10:33001 198.18.2.7:443 0 movable")]
    [InlineData("session 1 tunnel 198.18.1.5:40001 198.18.0.10:1080 198.18.0.10:33001 198.18.2.7:443 0 movable")]
    [InlineData("session 1 connect 198.18.1.5 198.18.0.10:1080 198.18.0.10:33001 198.18.2.7:443 0 movable")]
    [InlineData("session 1 connect 198.18.1.5:0 198.18.0.10:1080 198.18.0.10:33001 198.18.2.7:443 0 movable")]
    [InlineData("session 1 connect 198.18.1.5:40001 198.18.0.10:1080 198.18.0.10:33001 198.18.2.7:443 -1 movable")]
    [InlineData("session 1 connect 198.18.1.5:40001 198.18.0.10:1080 198.18.0.10:33001 198.18.2.7:443 0 stays=")]
    [InlineData("session 1 connect 198.18.1.5:40001 198.18.0.10:1080 198.18.0.10:33001 198.18.2.7:443 0 stays=a\tb")]
    [InlineData("session a/b connect 198.18.1.5:40001 198.18.0.10:1080 198.18.0.10:33001 198.18.2.7:443 0 movable")]
    public void TryParse_LineOutsideTheProtocol_IsRefused(string line)
    {
        Assert.False(ProxySession.TryParse(line, out var session));
        Assert.Null(session);
    }

    [Theory]
    [InlineData("moved s1 12", "s1", true, 12, null)]
    [InlineData("stayed s2 restore-failed", "s2", false, 0, "restore-failed")]
    public void ParseOutcome_MovedOrStayed_IsRead(string line, string id, bool moved, int pause, string? reason)
    {
        Assert.Equal(new MoveOutcome(id, moved, pause, reason), MigrationProxyClient.ParseOutcome(line));
    }

    [Theory]
    [InlineData("moved s1")]
    [InlineData("moved s1 -3")]
    [InlineData("gone s1 3")]
    [InlineData("stayed s1 a b")]
    public void ParseOutcome_OtherLine_IsNull(string line)
    {
        Assert.Null(MigrationProxyClient.ParseOutcome(line));
    }
}
