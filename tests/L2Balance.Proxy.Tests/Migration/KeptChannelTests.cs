using L2Balance.Proxy.Migration;
using Xunit;

namespace L2Balance.Proxy.Tests.Migration;

/// <summary>Which channel to a peer l2proxy keeps when a second arrives (<see cref="MigrationService.KeepsEarlier"/>).</summary>
public sealed class KeptChannelTests
{
    [Theory]
    [InlineData(0, 32, true)] // a finished batch's channel does not displace one prepared for the next batch
    [InlineData(0, 0, false)] // two channels left by finished batches: the newer stays
    [InlineData(32, 0, false)] // a prepared channel displaces one a finished batch left
    [InlineData(32, 32, false)] // a newer prepare replaces an older one
    public void KeepsEarlier_ByWhatEachChannelWasPreparedFor_PreparedOutranksLeftOver(int newIds, int earlierIds, bool expected) =>
        Assert.Equal(expected, MigrationService.KeepsEarlier(newIds, earlierIds));
}
