using L2Balance.Balancer.Diagnostics;
using L2Balance.Balancer.Protocol;
using Xunit;

namespace L2Balance.L2Bal.Tests.Diagnostics;

/// <summary>The text of <c>l2bal status</c>: what an operator reads must not contradict the bucket map.</summary>
public class StatusTextTests
{
    [Fact]
    public void Text_DeadPeerThatHeldBuckets_ClaimsNoBucketsForIt()
    {
        var sample = StatusDocumentTests.Sample(new EventJournal()) with
        {
            Peers = [new PeerStatus(1, AdvertState.Active, true, 12, 2048), new PeerStatus(3, AdvertState.Active, false, 500, 2048)],
        };
        var lines = StatusRenderer.Text(sample).Split('\n');
        var dead = Assert.Single(lines, l => l.StartsWith("peer 3:", StringComparison.Ordinal));
        Assert.DoesNotContain("holds 2048", dead, StringComparison.Ordinal);
        Assert.Contains("holds nothing", dead, StringComparison.Ordinal);
        Assert.Contains("holds 2048", Assert.Single(lines, l => l.StartsWith("peer 1:", StringComparison.Ordinal)), StringComparison.Ordinal);
    }
}
