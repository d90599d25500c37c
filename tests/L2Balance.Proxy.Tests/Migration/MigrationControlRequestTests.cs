using System.Net;
using L2Balance.Proxy.Migration;
using Xunit;

namespace L2Balance.Proxy.Tests.Migration;

public sealed class MigrationControlRequestTests
{
    [Fact]
    public void Parse_Key_ReadsEpochAndKey()
    {
        var hex = new string('a', 62) + "0f";

        var request = Assert.IsType<MigrationControlRequest.Key>(MigrationControlRequest.Parse($"key 7 {hex}", out _));

        Assert.Equal(7u, request.Epoch);
        Assert.Equal(Convert.FromHexString(hex), request.Value);
    }

    [Theory]
    [InlineData("key 7 abc")]
    [InlineData("key x aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    [InlineData("key 7 zaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    [InlineData("accept nowhere")]
    [InlineData("accept 0.0.0.0:1081")]
    [InlineData("move 198.18.0.2:1081")]
    [InlineData("move 198.18.0.2:1081 1 -2")]
    [InlineData("prepare 198.18.0.2:1081")]
    [InlineData("prepare nowhere 1")]
    [InlineData("list all")]
    [InlineData("steal 1")]
    [InlineData("")]
    public void Parse_Malformed_IsAnErrorWithAReason(string line)
    {
        Assert.Null(MigrationControlRequest.Parse(line, out var error));
        Assert.NotEmpty(error);
    }

    [Fact]
    public void Parse_AcceptWithoutPort_TakesTheDefaultChannelPort()
    {
        var request = Assert.IsType<MigrationControlRequest.Accept>(MigrationControlRequest.Parse("accept 198.18.0.1", out _));

        Assert.Equal(new IPEndPoint(IPAddress.Parse("198.18.0.1"), MigrationControlRequest.DefaultChannelPort), request.At);
    }

    [Fact]
    public void Parse_MoveToAnIpv6Peer_ReadsPeerAndIds()
    {
        var request = Assert.IsType<MigrationControlRequest.Move>(MigrationControlRequest.Parse("move [fdc6:1200::2]:1081 3 10 42", out _));

        Assert.Equal(new IPEndPoint(IPAddress.Parse("fdc6:1200::2"), 1081), request.Peer);
        Assert.Equal([3L, 10L, 42L], request.Ids);
    }

    [Fact]
    public void Parse_Prepare_ReadsPeerAndIdsWithTheDefaultPort()
    {
        var request = Assert.IsType<MigrationControlRequest.Prepare>(MigrationControlRequest.Parse("prepare 198.18.0.2 7 3", out _));

        Assert.Equal(new IPEndPoint(IPAddress.Parse("198.18.0.2"), MigrationControlRequest.DefaultChannelPort), request.Peer);
        Assert.Equal([7L, 3L], request.Ids);
    }

    [Fact]
    public void Parse_MoveAboveTheBatchLimit_IsRefused()
    {
        var ids = string.Join(' ', Enumerable.Range(1, MigrationControlRequest.MaxMoveIds + 1));

        Assert.Null(MigrationControlRequest.Parse($"move 198.18.0.2:1081 {ids}", out var error));
        Assert.Contains("at most", error, StringComparison.Ordinal);
    }

    [Fact]
    public void RefusalWords_EachReason_RoundTripsAndIsThePinnedWord()
    {
        var words = Enum.GetValues<MigrationRefusal>().Select(r => r.Word()).ToArray();

        Assert.Equal(["not-single-ip", "gssapi-protected", "not-established", "too-large", "restore-failed", "peer-unreachable", "no-key", "workers"], words);
        Assert.All(Enum.GetValues<MigrationRefusal>(), r => Assert.Equal(r, MigrationRefusals.Parse(r.Word())));
        Assert.Null(MigrationRefusals.Parse("gone"));
    }
}
