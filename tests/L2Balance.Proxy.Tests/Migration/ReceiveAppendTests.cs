using L2Balance.Proxy.Migration;
using Xunit;

namespace L2Balance.Proxy.Tests.Migration;

public sealed class ReceiveAppendTests
{
    private const int Max = 1 << 20;

    /// <summary>Bytes numbered by their sequence number, so a byte taken twice or shifted is visible.</summary>
    private static CapturedSegment Segment(uint seq, int length, bool finOrRst = false) =>
        new(seq, Enumerable.Range(0, length).Select(i => (byte)(seq + (uint)i)).ToArray(), finOrRst);

    private static byte[] Stream(uint from, int length) => Enumerable.Range(0, length).Select(i => (byte)(from + (uint)i)).ToArray();

    [Fact]
    public void Contiguous_SegmentsInOrderFromRcvNxt_TakesThemAll()
    {
        var bytes = ReceiveAppend.Contiguous(1000, [Segment(1000, 100), Segment(1100, 50)], Max);

        Assert.Equal(Stream(1000, 150), bytes);
    }

    [Fact]
    public void Contiguous_SequenceWrapsPastZero_ContinuesAcrossTheWrap()
    {
        var bytes = ReceiveAppend.Contiguous(0xFFFFFFF0, [Segment(0xFFFFFFF0, 32), Segment(0x10, 16)], Max);

        Assert.Equal(Stream(0xFFFFFFF0, 48), bytes);
    }

    [Fact]
    public void Contiguous_SegmentStraddlingRcvNxt_TakesOnlyTheBytesTheOldSocketLacked()
    {
        var bytes = ReceiveAppend.Contiguous(1050, [Segment(1000, 100)], Max);

        Assert.Equal(Stream(1050, 50), bytes);
    }

    [Fact]
    public void Contiguous_SegmentWhollyBeforeRcvNxt_TakesNothing()
    {
        Assert.Empty(ReceiveAppend.Contiguous(5000, [Segment(1000, 100), Segment(4900, 100)], Max));
    }

    [Fact]
    public void Contiguous_OverlappingAndDuplicateSegmentsOutOfOrder_TakesEachByteOnce()
    {
        var bytes = ReceiveAppend.Contiguous(1000, [Segment(1150, 100), Segment(1000, 100), Segment(1000, 100), Segment(1050, 120), Segment(1150, 100)], Max);

        Assert.Equal(Stream(1000, 250), bytes);
    }

    [Fact]
    public void Contiguous_GapAfterTheFirstSegment_StopsAtTheGap()
    {
        var bytes = ReceiveAppend.Contiguous(1000, [Segment(1000, 100), Segment(1101, 100)], Max);

        Assert.Equal(Stream(1000, 100), bytes);
    }

    [Fact]
    public void Contiguous_NothingAtRcvNxt_TakesNothing()
    {
        Assert.Empty(ReceiveAppend.Contiguous(1000, [Segment(1001, 100)], Max));
    }

    [Theory]
    [InlineData(1100u, 100)]
    [InlineData(1000u, 0)]
    [InlineData(1050u, 50)]
    public void Contiguous_FinOrRstAtOrAfterRcvNxt_StopsBeforeIt(uint finSeq, int expected)
    {
        var bytes = ReceiveAppend.Contiguous(1000, [Segment(1000, 100), Segment(1100, 100), Segment(finSeq, 10, finOrRst: true)], Max);

        Assert.Equal(Stream(1000, expected), bytes);
    }

    [Fact]
    public void Contiguous_OldRstBeforeRcvNxt_IsIgnored()
    {
        var bytes = ReceiveAppend.Contiguous(1000, [Segment(900, 0, finOrRst: true), Segment(1000, 100)], Max);

        Assert.Equal(Stream(1000, 100), bytes);
    }

    [Fact]
    public void Contiguous_MoreThanTheBound_StopsAtTheBound()
    {
        var bytes = ReceiveAppend.Contiguous(0xFFFFFF00, [Segment(0xFFFFFF00, 1000)], 300);

        Assert.Equal(Stream(0xFFFFFF00, 300), bytes);
    }

    [Fact]
    public void AtGo_RcvNxtWhereTheRestoreLeftIt_TakesOnlyTheBytesAfterTheRestoreAppend()
    {
        // 1000..1100 appended at restore (rcv_nxt 1100); 1100..1180 arrived before Go.
        var bytes = ReceiveAppend.AtGo(1100, 1100, [Segment(1000, 100), Segment(1100, 80)], Max);

        Assert.Equal(Stream(1100, 80), bytes);
    }

    [Fact]
    public void AtGo_RcvNxtMovedSinceTheRestore_AppendsNothing()
    {
        var bytes = ReceiveAppend.AtGo(1100, 1150, [Segment(1000, 100), Segment(1100, 80)], Max);

        Assert.Null(bytes);
    }

    [Fact]
    public void AtGo_RetransmittedSegmentBeforeRcvNxt_IsNotTakenAgain()
    {
        var bytes = ReceiveAppend.AtGo(1100, 1100, [Segment(1000, 100), Segment(1000, 100)], Max);

        Assert.Empty(bytes!);
    }

    [Fact]
    public void AtGo_GapAfterRcvNxt_StopsAtTheGap()
    {
        var bytes = ReceiveAppend.AtGo(1100, 1100, [Segment(1100, 40), Segment(1200, 40)], Max);

        Assert.Equal(Stream(1100, 40), bytes);
    }

    [Fact]
    public void AtGo_FinAfterTheData_StopsBeforeTheFin()
    {
        var bytes = ReceiveAppend.AtGo(1100, 1100, [Segment(1100, 40), Segment(1140, 0, finOrRst: true)], Max);

        Assert.Equal(Stream(1100, 40), bytes);
    }

    [Fact]
    public void AtGo_SequenceWrapsBetweenRestoreAndGo_ContinuesAcrossTheWrap()
    {
        var bytes = ReceiveAppend.AtGo(0xFFFFFFF8, 0xFFFFFFF8, [Segment(0xFFFFFFE8, 16), Segment(0xFFFFFFF8, 24)], Max);

        Assert.Equal(Stream(0xFFFFFFF8, 24), bytes);
    }
}
