using L2Balance.Proxy.Config;
using L2Balance.Proxy.Server;
using Xunit;

namespace L2Balance.Proxy.Tests.Migration;

/// <summary>What a moved UDP association carries besides its sockets (docs/design.md#udp-associations).</summary>
public sealed class UdpMoveTests
{
    [Theory]
    [InlineData(MethodKind.None, 0x00)]
    [InlineData(MethodKind.Gssapi, 0x01)]
    [InlineData(MethodKind.Username, 0x02)]
    public void MethodCode_EveryMethod_IsItsRfc1928CodeAndBack(MethodKind method, byte code)
    {
        Assert.Equal(code, SocksSession.MethodCode(method));
        Assert.Equal(method, SocksSession.MethodOf(code));
    }

    [Theory]
    [InlineData(0x03)]
    [InlineData(0x80)]
    [InlineData(0xFF)]
    public void MethodOf_ACodeThisProxyDoesNotNegotiate_IsNull(byte code) => Assert.Null(SocksSession.MethodOf(code));
}
