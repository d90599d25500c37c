using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace L2Balance.Common.CommandLine;

/// <summary>
/// A duration as both command lines (and l2bal's configuration file) write it: a number and its
/// unit, <c>40ms</c>, <c>1.5s</c>, <c>5m</c>, <c>1h</c>. A bare number is refused, since
/// <c>40</c> could mean either unit.
/// </summary>
public static class DurationSyntax
{
    /// <summary>The units, as messages and help texts list them.</summary>
    public const string Units = "ms, s, m or h";

    /// <summary>Longest unit first, so <see cref="Format"/> writes <c>2m</c> rather than <c>120s</c>.</summary>
    private static readonly (string Suffix, long Ticks)[] UnitTable =
    [
        ("h", TimeSpan.TicksPerHour), ("m", TimeSpan.TicksPerMinute), ("s", TimeSpan.TicksPerSecond), ("ms", TimeSpan.TicksPerMillisecond),
    ];

    /// <summary>
    /// Reads <paramref name="text"/>; on failure <paramref name="problem"/> says what is wrong and
    /// how to write it, for the caller to prefix with the flag or file position and the value.
    /// </summary>
    public static bool TryParse(string text, out TimeSpan value, [NotNullWhen(false)] out string? problem)
    {
        ArgumentNullException.ThrowIfNull(text);
        value = TimeSpan.Zero;
        var split = 0;
        while (split < text.Length && (char.IsAsciiDigit(text[split]) || text[split] is '.' or '-' or '+'))
        {
            split++;
        }
        var (number, unit) = (text[..split], text[split..]);
        if (number.StartsWith('-'))
        {
            problem = "a duration cannot be negative";
            return false;
        }
        if (!decimal.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount))
        {
            problem = $"not a duration: write a number and its unit ({Units}), e.g. 40ms or 5s";
            return false;
        }
        if (unit.Length == 0)
        {
            problem = $"a number alone has no unit: write {number}ms or {number}s";
            return false;
        }
        var index = Array.FindIndex(UnitTable, u => u.Suffix == unit);
        if (index < 0)
        {
            problem = $"unknown unit '{unit}': use {Units}, e.g. 40ms or 5s";
            return false;
        }
        // Compared before scaling: a number that fits a decimal can overflow it once multiplied to ticks.
        var ticks = amount > (decimal)TimeSpan.MaxValue.Ticks / UnitTable[index].Ticks ? decimal.MaxValue : decimal.Round(amount * UnitTable[index].Ticks);
        if (ticks > TimeSpan.MaxValue.Ticks)
        {
            problem = "too long a duration";
            return false;
        }
        value = new TimeSpan((long)ticks);
        problem = null;
        return true;
    }

    /// <summary>Writes <paramref name="value"/> in the largest unit that keeps it whole (<c>40ms</c>, <c>30s</c>, <c>0s</c>), as help shows defaults.</summary>
    public static string Format(TimeSpan value)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.Zero);
        if (value == TimeSpan.Zero)
        {
            return "0s";
        }
        foreach (var (suffix, ticks) in UnitTable)
        {
            if (value.Ticks % ticks == 0)
            {
                return string.Create(CultureInfo.InvariantCulture, $"{value.Ticks / ticks}{suffix}");
            }
        }
        return string.Create(CultureInfo.InvariantCulture, $"{(decimal)value.Ticks / TimeSpan.TicksPerMillisecond}ms");
    }
}
