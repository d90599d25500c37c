using L2Balance.Proxy.Migration;
using L2Balance.Proxy.Protocol;
using Xunit;

namespace L2Balance.Proxy.Tests.Migration;

public sealed class MigrationMessagesTests
{
    [Fact]
    public void State_RoundTrip_KeepsSessionAndPayload()
    {
        var status = MigrationMessages.TryParse(MigrationMessages.State(42, [1, 2, 3]), out var message);

        Assert.Equal(ParseStatus.Ok, status);
        Assert.Equal((MigrationMessageType.State, 42UL), (message.Type, message.Session));
        Assert.Equal([1, 2, 3], message.Payload.ToArray());
    }

    [Fact]
    public void Ready_Refused_CarriesTheReasonWord()
    {
        Assert.Equal(ParseStatus.Ok, MigrationMessages.TryParse(MigrationMessages.Ready(9, MigrationRefusal.RestoreFailed), out var refused));
        Assert.Equal(ParseStatus.Ok, MigrationMessages.TryParse(MigrationMessages.Ready(9, null), out var ready));

        Assert.False(refused.Ok);
        Assert.Equal("restore-failed", refused.Reason);
        Assert.True(ready.Ok);
        Assert.Equal("", ready.Reason);
    }

    [Fact]
    public void Go_RoundTrip_KeepsTheDecision()
    {
        Assert.Equal(ParseStatus.Ok, MigrationMessages.TryParse(MigrationMessages.Go(5, go: false), out var noGo));

        Assert.Equal((MigrationMessageType.Go, 5UL, false), (noGo.Type, noGo.Session, noGo.Ok));
    }

    [Theory]
    [InlineData(new byte[] { })]
    [InlineData(new byte[] { 1, 0, 0, 0 })]
    [InlineData(new byte[] { 9, 0, 0, 0, 0, 0, 0, 0, 1 })]
    [InlineData(new byte[] { 3, 0, 0, 0, 0, 0, 0, 0, 1 })]
    [InlineData(new byte[] { 3, 0, 0, 0, 0, 0, 0, 0, 1, 2 })]
    [InlineData(new byte[] { 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, (byte)'\n' })]
    [InlineData(new byte[] { 2, 0, 0, 0, 0, 0, 0, 0, 1, 7 })]
    public void TryParse_Malformed_IsInvalid(byte[] input)
    {
        Assert.Equal(ParseStatus.Invalid, MigrationMessages.TryParse(input, out _));
    }
}
