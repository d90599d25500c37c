using Xunit;

namespace L2Balance.Lab.Tests.Balancer.Cluster;

/// <summary>How M5 counts what loss forced (FailureMatrixTests.Silences): one peer's silence seen by several nodes is one.</summary>
public sealed class SilencesTests
{
    private static readonly DateTime T = new(2026, 12, 4, 2, 31, 35, DateTimeKind.Utc);

    [Fact]
    public void Silences_OnePeerDeadOnTwoNodesWithinAMoment_AreOne()
    {
        Assert.Equal(1, FailureMatrixTests.Silences([(2, T, "node 1"), (2, T.AddMilliseconds(1), "node 3")]));
    }

    [Fact]
    public void Silences_OnePeerDeadTwiceASecondApartAndAnotherPeerDead_AreThree()
    {
        Assert.Equal(3, FailureMatrixTests.Silences([(2, T, "node 1"), (3, T.AddMilliseconds(10), "node 2"), (2, T.AddSeconds(1), "node 3")]));
    }

    [Fact]
    public void Silences_DeathsNoLongerKept_CountOneEach()
    {
        Assert.Equal(3, FailureMatrixTests.Silences([(0, null, "node 1"), (0, null, "node 1"), (2, T, "node 3")]));
    }
}
