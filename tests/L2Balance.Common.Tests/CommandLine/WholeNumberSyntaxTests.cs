using L2Balance.Common.CommandLine;
using Xunit;

namespace L2Balance.Common.Tests.CommandLine;

public class WholeNumberSyntaxTests
{
    [Theory]
    [InlineData("1", 1)]
    [InlineData("64", 64)]
    [InlineData("007", 7)]
    public void TryParse_DigitsInRange_AreRead(string text, int expected)
    {
        Assert.True(WholeNumberSyntax.TryParse(text, 1, 64, out var value, out var problem), problem);
        Assert.Equal(expected, value);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("65")]
    [InlineData("-1")]
    [InlineData("+1")]
    [InlineData(" 1")]
    [InlineData("1,000")]
    [InlineData("0x10")]
    [InlineData("four")]
    [InlineData("")]
    [InlineData("99999999999")]
    public void TryParse_OutsideRangeOrNotDigits_NamesTheRange(string text)
    {
        Assert.False(WholeNumberSyntax.TryParse(text, 1, 64, out var value, out var problem));
        Assert.Equal("give a whole number from 1 to 64", problem);
        Assert.Equal(0, value);
    }

    [Fact]
    public void TryParse_UnboundedRange_SaysOnlyTheMinimum()
    {
        Assert.False(WholeNumberSyntax.TryParse("x", 0, int.MaxValue, out _, out var problem));
        Assert.Equal("give a whole number, at least 0", problem);
    }
}
