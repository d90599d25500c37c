using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace L2Balance.Common.CommandLine;

/// <summary>A count or an id on both command lines: decimal digits only, within a range.</summary>
public static class WholeNumberSyntax
{
    /// <summary>Reads <paramref name="text"/>; on failure <paramref name="problem"/> names the range to give.</summary>
    public static bool TryParse(string text, int min, int max, out int value, [NotNullWhen(false)] out string? problem)
    {
        ArgumentNullException.ThrowIfNull(text);
        // NumberStyles.None: no sign, no white space, no thousands separator.
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) || value < min || value > max)
        {
            value = 0;
            problem = max == int.MaxValue ? $"give a whole number, at least {min}" : $"give a whole number from {min} to {max}";
            return false;
        }
        problem = null;
        return true;
    }
}
