using L2Balance.Common.CommandLine;
using Xunit;

namespace L2Balance.Common.Tests.CommandLine;

public class DurationSyntaxTests
{
    [Theory]
    [InlineData("40ms", 40 * TimeSpan.TicksPerMillisecond)]
    [InlineData("0.5ms", 5_000)]
    [InlineData("0.05s", 50 * TimeSpan.TicksPerMillisecond)]
    [InlineData("1.5s", 1_500 * TimeSpan.TicksPerMillisecond)]
    [InlineData(".5s", 500 * TimeSpan.TicksPerMillisecond)]
    [InlineData("30s", 30 * TimeSpan.TicksPerSecond)]
    [InlineData("5m", 5 * TimeSpan.TicksPerMinute)]
    [InlineData("2h", 2 * TimeSpan.TicksPerHour)]
    [InlineData("0s", 0)]
    [InlineData("0ms", 0)]
    [InlineData("007s", 7 * TimeSpan.TicksPerSecond)]
    public void TryParse_NumberWithUnit_IsRead(string text, long ticks)
    {
        Assert.True(DurationSyntax.TryParse(text, out var value, out var problem), problem);
        Assert.Equal(TimeSpan.FromTicks(ticks), value);
    }

    [Theory]
    [InlineData("40", "a number alone has no unit: write 40ms or 40s")]
    [InlineData("0", "a number alone has no unit: write 0ms or 0s")]
    [InlineData("1.5", "a number alone has no unit: write 1.5ms or 1.5s")]
    [InlineData("-5s", "a duration cannot be negative")]
    [InlineData("-5", "a duration cannot be negative")]
    [InlineData("", "not a duration: write a number and its unit (ms, s, m or h), e.g. 40ms or 5s")]
    [InlineData("ms", "not a duration: write a number and its unit (ms, s, m or h), e.g. 40ms or 5s")]
    [InlineData("fast", "not a duration: write a number and its unit (ms, s, m or h), e.g. 40ms or 5s")]
    [InlineData("+5s", "not a duration: write a number and its unit (ms, s, m or h), e.g. 40ms or 5s")]
    [InlineData("1.2.3s", "not a duration: write a number and its unit (ms, s, m or h), e.g. 40ms or 5s")]
    [InlineData("5 s", "unknown unit ' s': use ms, s, m or h, e.g. 40ms or 5s")]
    [InlineData("5sec", "unknown unit 'sec': use ms, s, m or h, e.g. 40ms or 5s")]
    [InlineData("5us", "unknown unit 'us': use ms, s, m or h, e.g. 40ms or 5s")]
    [InlineData("1e3ms", "unknown unit 'e3ms': use ms, s, m or h, e.g. 40ms or 5s")]
    [InlineData("99999999999999h", "too long a duration")]
    // Found by lab/fuzz (l2bal-config): numbers that fit a decimal but overflow it once scaled to ticks threw OverflowException.
    [InlineData("2999999999999999999999999s", "too long a duration")]
    [InlineData("79228162514264337593543950335h", "too long a duration")]
    public void TryParse_Malformed_IsRefusedSayingWhy(string text, string expected)
    {
        Assert.False(DurationSyntax.TryParse(text, out var value, out var problem));
        Assert.Equal(expected, problem);
        Assert.Equal(TimeSpan.Zero, value);
    }

    [Theory]
    [InlineData(0, "0s")]
    [InlineData(40 * TimeSpan.TicksPerMillisecond, "40ms")]
    [InlineData(1_500 * TimeSpan.TicksPerMillisecond, "1500ms")]
    [InlineData(30 * TimeSpan.TicksPerSecond, "30s")]
    [InlineData(90 * TimeSpan.TicksPerSecond, "90s")]
    [InlineData(2 * TimeSpan.TicksPerMinute, "2m")]
    [InlineData(TimeSpan.TicksPerHour, "1h")]
    [InlineData(5_000, "0.5ms")]
    [InlineData(1, "0.0001ms")]
    public void Format_Duration_UsesTheLargestWholeUnit(long ticks, string expected) =>
        Assert.Equal(expected, DurationSyntax.Format(TimeSpan.FromTicks(ticks)));

    [Fact]
    public void Format_Negative_IsRefused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => DurationSyntax.Format(TimeSpan.FromSeconds(-1)));

    [Fact]
    public void FormatThenParse_AnyDuration_GivesItBack()
    {
        var random = new Random(12);
        for (var i = 0; i < 10_000; i++)
        {
            // Mostly whole milliseconds, as configurations use; every tenth any tick count up to a day.
            var ticks = i % 10 == 0 ? random.NextInt64(TimeSpan.TicksPerDay) : random.NextInt64(86_400_000) * TimeSpan.TicksPerMillisecond;
            var text = DurationSyntax.Format(TimeSpan.FromTicks(ticks));
            Assert.True(DurationSyntax.TryParse(text, out var value, out var problem), $"{text}: {problem}");
            Assert.Equal(ticks, value.Ticks);
        }
    }
}
