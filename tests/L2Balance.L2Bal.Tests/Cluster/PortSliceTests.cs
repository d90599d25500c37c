using L2Balance.Balancer.Cluster;
using Xunit;

namespace L2Balance.L2Bal.Tests.Cluster;

public class PortSliceTests
{
    [Fact]
    public void Slices_OfEveryNode_AreDisjointContiguousAndCoverTheRange()
    {
        for (int n = 1; n <= 16; n++)
        {
            int next = PortSlice.RangeLow;
            int smallest = int.MaxValue, largest = 0;
            for (int id = 1; id <= n; id++)
            {
                var (low, high) = PortSlice.For(id, n);
                Assert.Equal(next, low);
                Assert.True(high >= low);
                smallest = Math.Min(smallest, high - low + 1);
                largest = Math.Max(largest, high - low + 1);
                next = high + 1;
            }

            Assert.Equal(PortSlice.RangeHigh + 1, next);
            Assert.InRange(largest - smallest, 0, 1);
        }
    }

    [Fact]
    public void Slice_KnownInputs_GiveKnownRanges()
    {
        Assert.Equal((32768, 60999), PortSlice.For(1, 1));
        Assert.Equal((32768, 42178), PortSlice.For(1, 3));
        Assert.Equal((42179, 51589), PortSlice.For(2, 3)); // 28232 = 3 × 9410 + 2: nodes 1 and 2 get 9411
        Assert.Equal((51590, 60999), PortSlice.For(3, 3));
    }

    [Fact]
    public void ServicePorts_AnyNodeCount_LieOutsideEverySlice()
    {
        foreach (int port in new[] { 53, 1080, 8080, 32767, 61000 })
        {
            for (int n = 1; n <= 16; n++)
            {
                for (int id = 1; id <= n; id++)
                {
                    var (low, high) = PortSlice.For(id, n);
                    Assert.False(port >= low && port <= high);
                }
            }
        }
    }

    [Fact]
    public void Describe_OneNode_IsItsRangeForPortRange() =>
        Assert.Equal("42179-51589\n", PortSlice.Describe(2, 3));

    [Fact]
    public void Describe_WithoutNodeId_ListsEveryNodesSliceInIdOrder() =>
        Assert.Equal("node 1: 32768-42178\nnode 2: 42179-51589\nnode 3: 51590-60999\n", PortSlice.Describe(null, 3));

    [Theory]
    [InlineData(0, 3)]
    [InlineData(4, 3)]
    [InlineData(-1, 3)]
    [InlineData(1, 0)]
    [InlineData(1, 65)]
    public void Slice_BadInput_IsRejected(int id, int count)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => PortSlice.For(id, count));
    }
}
