using System.Globalization;
using System.Text;

namespace L2Balance.Common.Logging;

/// <summary>
/// Escapes text that came from the network (a user name, a domain name, a parser's detail) before
/// it is put into a log line, so that no client can end a line, start a forged one, hide text from
/// a terminal or make one line unbounded (issue 13). The result is printable, one line, and at most
/// <see cref="DefaultMaxChars"/> characters (or the bound asked for).
/// </summary>
/// <remarks>
/// Escaped: backslash as <c>\\</c>; tab, CR and LF as <c>\t</c>, <c>\r</c>, <c>\n</c>; every other
/// C0 control, DEL and C1 control as <c>\xNN</c>; the Unicode line and paragraph separators and the
/// bidirectional overrides and isolates (which reorder what a terminal shows) as <c>\uNNNN</c>; an
/// unpaired surrogate as <c>\uNNNN</c>; and, in bytes, every byte that is not part of valid UTF-8 as
/// <c>\xNN</c>. Anything else passes unchanged, so plain names and addresses read as they are.
/// </remarks>
public static class LogText
{
    /// <summary>512 characters: a 255-byte RFC 1929 name or DNS name fits whole unless most of it needs escaping.</summary>
    public const int DefaultMaxChars = 512;

    /// <summary>The text as it is put into a log line: escaped and bounded (see <see cref="LogText"/>).</summary>
    /// <param name="text">What came from the network; null gives an empty string.</param>
    /// <param name="maxChars">The longest escaped text; a longer one is cut and ends with <c>...(N chars)</c>.</param>
    public static string Escape(string? text, int maxChars = DefaultMaxChars)
    {
        if (string.IsNullOrEmpty(text))
        {
            return string.Empty;
        }

        if (text.Length <= maxChars && !NeedsEscaping(text))
        {
            return text;
        }

        var output = new StringBuilder(Math.Min(text.Length + 16, maxChars + 32));
        for (var i = 0; i < text.Length && output.Length <= maxChars; i++)
        {
            var c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                output.Append(c).Append(text[++i]);
                continue;
            }

            AppendEscaped(output, c);
        }

        return Bound(output, maxChars, $"{text.Length} chars");
    }

    /// <summary>
    /// Bytes as they are put into a log line: valid UTF-8 decoded and escaped as <see cref="Escape(string?, int)"/>,
    /// every byte of an invalid sequence as <c>\xNN</c>.
    /// </summary>
    public static string Escape(ReadOnlySpan<byte> bytes, int maxChars = DefaultMaxChars)
    {
        var output = new StringBuilder(Math.Min(bytes.Length + 16, maxChars + 32));
        var rest = bytes;
        while (!rest.IsEmpty && output.Length <= maxChars)
        {
            var status = Rune.DecodeFromUtf8(rest, out var rune, out var consumed);
            if (status != System.Buffers.OperationStatus.Done)
            {
                AppendHex(output, rest[0]);
                rest = rest[1..];
                continue;
            }

            if (rune.IsBmp)
            {
                AppendEscaped(output, (char)rune.Value);
            }
            else
            {
                output.Append(rune.ToString());
            }

            rest = rest[consumed..];
        }

        return Bound(output, maxChars, $"{bytes.Length} bytes");
    }

    private static bool NeedsEscaping(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
                continue;
            }

            if (IsEscaped(c))
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsEscaped(char c) =>
        c < 0x20 || c == '\\' || c is >= '\x7f' and <= '\x9f' || char.IsSurrogate(c)
        || c is '\u2028' or '\u2029' || c is >= '\u202a' and <= '\u202e' || c is >= '\u2066' and <= '\u2069';

    private static void AppendEscaped(StringBuilder output, char c)
    {
        if (!IsEscaped(c))
        {
            output.Append(c);
            return;
        }

        switch (c)
        {
            case '\\':
                output.Append(@"\\");
                break;
            case '\n':
                output.Append(@"\n");
                break;
            case '\r':
                output.Append(@"\r");
                break;
            case '\t':
                output.Append(@"\t");
                break;
            case <= '\xff':
                AppendHex(output, (byte)c);
                break;
            default:
                output.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
                break;
        }
    }

    private static void AppendHex(StringBuilder output, byte b) => output.Append(CultureInfo.InvariantCulture, $"\\x{b:x2}");

    private static string Bound(StringBuilder output, int maxChars, string inputLength)
    {
        if (output.Length <= maxChars)
        {
            return output.ToString();
        }

        // Never end on half a surrogate pair: the cut text must stay valid UTF-16.
        output.Length = maxChars > 0 && char.IsHighSurrogate(output[maxChars - 1]) ? maxChars - 1 : maxChars;
        return output.Append("...(").Append(inputLength).Append(')').ToString();
    }
}
