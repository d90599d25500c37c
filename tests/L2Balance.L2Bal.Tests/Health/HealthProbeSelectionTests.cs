using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Health;
using Xunit;

namespace L2Balance.L2Bal.Tests.Health;

/// <summary>The socks5:// probe's greeting and its reading of the method selection (RFC 1928 section 3).</summary>
public sealed class HealthProbeSelectionTests
{
    [Fact]
    public void Greeting_OffersNoneGssapiAndUsername_ThreeMethods() =>
        Assert.Equal(new byte[] { 5, 3, 0, 1, 2 }, HealthProbe.Greeting.ToArray());

    [Theory]
    [InlineData(new byte[] { 5, 0 })]
    [InlineData(new byte[] { 5, 1 })] // a proxy with socksmethod gssapi alone
    [InlineData(new byte[] { 5, 2 })]
    public void CheckMethodSelection_OfferedMethod_Passes(byte[] reply) =>
        Assert.Equal(HealthProbeResult.Pass, HealthProbe.CheckMethodSelection(reply));

    [Theory]
    [InlineData(new byte[] { 5, 0xFF }, "unexpected SOCKS5 method selection 05FF")]
    [InlineData(new byte[] { 5, 3 }, "unexpected SOCKS5 method selection 0503")]
    [InlineData(new byte[] { 4, 0 }, "unexpected SOCKS5 method selection 0400")]
    public void CheckMethodSelection_NoOfferedMethod_IsWrongAnswer(byte[] reply, string detail)
    {
        var result = HealthProbe.CheckMethodSelection(reply);
        Assert.Equal(HealthFailure.WrongAnswer, result.Failure);
        Assert.Equal(detail, result.Detail);
    }
}
