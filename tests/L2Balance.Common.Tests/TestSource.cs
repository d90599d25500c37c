using System.Text.RegularExpressions;

namespace L2Balance.Common.Tests;

/// <summary>A test method as its source declares it: where, its name, and the lines of any early-return guard.</summary>
internal sealed record TestMethod(string File, int Line, string Name, IReadOnlyList<int> EarlyReturns);

/// <summary>
/// Finds the test methods of a C# source file ([Fact], [Theory], [SkippableFact], [SkippableTheory],
/// [Property] and any other *Fact or *Theory attribute) without a compiler: comments and the
/// contents of string and character literals are blanked first, so that braces, attributes and
/// keywords are only those of the code.
/// </summary>
internal static partial class TestSource
{
    public static IEnumerable<TestMethod> Methods(string file, string source)
    {
        var code = Blank(source);
        var seen = new HashSet<int>();
        foreach (Match attribute in TestAttribute().Matches(code))
        {
            var declaration = Declaration().Match(code, attribute.Index + attribute.Length);
            var between = declaration.Success ? code[(attribute.Index + attribute.Length)..declaration.Index] : "";
            if (!declaration.Success || !OnlyAttributes(between))
            {
                // Not followed by a method this reader understands: fail loudly, never skip it.
                yield return new TestMethod(file, LineOf(code, attribute.Index), $"(no method after [{attribute.Value}])", []);
                continue;
            }

            var name = declaration.Groups["name"];
            if (!seen.Add(name.Index))
            {
                continue;
            }

            var parametersEnd = Matching(code, declaration.Index + declaration.Length - 1, '(', ')');
            var bodyStart = SkipWhiteSpace(code, parametersEnd + 1);
            var earlyReturns = bodyStart < code.Length && code[bodyStart] == '{'
                ? EarlyReturns(code, bodyStart, Matching(code, bodyStart, '{', '}'))
                : [];
            yield return new TestMethod(file, LineOf(code, name.Index), name.Value, earlyReturns);
        }
    }

    /// <summary>
    /// Whether text between a test attribute and a declaration can only be more attributes: no
    /// statement ends there, and braces (of array arguments) close as they open.
    /// </summary>
    private static bool OnlyAttributes(string between)
    {
        var depth = 0;
        foreach (var c in between)
        {
            depth += c == '{' ? 1 : c == '}' ? -1 : 0;
            if (depth < 0 || c == ';')
            {
                return false;
            }
        }

        return depth == 0;
    }

    /// <summary>
    /// Lines of every <c>return;</c> that sits, through if and else blocks only, directly in the
    /// method body (a guard such as <c>if (...) { return; }</c>); one inside a loop, a lambda or a
    /// local function is not a guard.
    /// </summary>
    private static List<int> EarlyReturns(string code, int open, int close)
    {
        var lines = new List<int>();
        var ifBlocks = new Stack<bool>();
        for (var i = open + 1; i < close; i++)
        {
            if (code[i] == '{')
            {
                ifBlocks.Push(KeywordBefore(code, i) is "if" or "else");
            }
            else if (code[i] == '}')
            {
                ifBlocks.TryPop(out _);
            }
            else if (IsWordAt(code, i, "return") && SkipWhiteSpace(code, i + "return".Length) is var next && next < close && code[next] == ';'
                && ifBlocks.All(isIf => isIf) && (ifBlocks.Count > 0 || KeywordBefore(code, i) is "if" or "else"))
            {
                lines.Add(LineOf(code, i));
            }
        }

        return lines;
    }

    /// <summary>The word before <paramref name="index"/>, looking past one parenthesised group: "if" for <c>if (x) {</c>.</summary>
    private static string KeywordBefore(string code, int index)
    {
        var j = index - 1;
        while (j >= 0 && char.IsWhiteSpace(code[j]))
        {
            j--;
        }

        if (j >= 0 && code[j] == ')')
        {
            for (var depth = 0; j >= 0; j--)
            {
                depth += code[j] switch { ')' => 1, '(' => -1, _ => 0 };
                if (depth == 0)
                {
                    break;
                }
            }

            j--;
            while (j >= 0 && char.IsWhiteSpace(code[j]))
            {
                j--;
            }
        }

        var end = j + 1;
        while (j >= 0 && (char.IsLetterOrDigit(code[j]) || code[j] == '_'))
        {
            j--;
        }

        return code[(j + 1)..end];
    }

    private static bool IsWordAt(string code, int i, string word) =>
        string.CompareOrdinal(code, i, word, 0, word.Length) == 0
        && (i == 0 || !IsIdentifierChar(code[i - 1]))
        && (i + word.Length >= code.Length || !IsIdentifierChar(code[i + word.Length]));

    private static bool IsIdentifierChar(char c) => char.IsLetterOrDigit(c) || c == '_';

    /// <summary>Index of the bracket closing the one at <paramref name="open"/> (the end of the text if none).</summary>
    private static int Matching(string code, int open, char opening, char closing)
    {
        var depth = 0;
        for (var i = open; i < code.Length; i++)
        {
            depth += code[i] == opening ? 1 : code[i] == closing ? -1 : 0;
            if (depth == 0)
            {
                return i;
            }
        }

        return code.Length;
    }

    private static int SkipWhiteSpace(string code, int i)
    {
        while (i < code.Length && char.IsWhiteSpace(code[i]))
        {
            i++;
        }

        return i;
    }

    private static int LineOf(string code, int index) => code.AsSpan(0, index).Count('\n') + 1;

    /// <summary>The source with comments and literal contents turned into spaces, newlines and offsets kept.</summary>
    internal static string Blank(string source)
    {
        var text = source.ToCharArray();
        for (var i = 0; i < source.Length;)
        {
            if (LiteralEnd(source, i) is { } end)
            {
                for (var k = i; k < end; k++)
                {
                    text[k] = text[k] == '\n' ? '\n' : ' ';
                }

                i = end;
            }
            else
            {
                i++;
            }
        }

        return new string(text);
    }

    /// <summary>The end of the comment, string or character literal starting at <paramref name="i"/>, or null if none does.</summary>
    private static int? LiteralEnd(string s, int i)
    {
        int end;
        switch (s[i])
        {
            case '/' when Peek(s, i + 1) == '/':
                end = s.IndexOf('\n', i);
                return end < 0 ? s.Length : end;
            case '/' when Peek(s, i + 1) == '*':
                end = s.IndexOf("*/", i + 2, StringComparison.Ordinal);
                return end < 0 ? s.Length : end + 2;
            case '\'':
                end = i + 1;
                while (end < s.Length && s[end] != '\'')
                {
                    end += s[end] == '\\' ? 2 : 1;
                }

                return Math.Min(end + 1, s.Length);
            case '"':
            case '$' or '@' when StringAfterPrefix(s, i):
                return StringEnd(s, i);
            default:
                return null;
        }
    }

    private static bool StringAfterPrefix(string s, int i)
    {
        while (i < s.Length && s[i] is '$' or '@')
        {
            i++;
        }

        return Peek(s, i) == '"';
    }

    /// <summary>The end of a regular, verbatim, raw or interpolated string starting (prefix included) at <paramref name="i"/>.</summary>
    private static int StringEnd(string s, int i)
    {
        var interpolated = false;
        var verbatim = false;
        for (; s[i] is '$' or '@'; i++)
        {
            interpolated |= s[i] == '$';
            verbatim |= s[i] == '@';
        }

        var quotes = 0;
        while (Peek(s, i + quotes) == '"')
        {
            quotes++;
        }

        if (!verbatim && quotes >= 3)
        {
            // Raw: ends at the first run of as many quotes as opened it; holes cannot hold that run.
            var end = s.IndexOf(new string('"', quotes), i + quotes, StringComparison.Ordinal);
            return end < 0 ? s.Length : end + quotes;
        }

        for (i++; i < s.Length;)
        {
            switch (s[i])
            {
                case '"' when verbatim && Peek(s, i + 1) == '"':
                    i += 2;
                    break;
                case '"':
                    return i + 1;
                case '\\' when !verbatim:
                    i += 2;
                    break;
                case '{' when interpolated && Peek(s, i + 1) == '{':
                    i += 2;
                    break;
                case '{' when interpolated:
                    i = HoleEnd(s, i + 1);
                    break;
                default:
                    i++;
                    break;
            }
        }

        return s.Length;
    }

    /// <summary>The index after the '}' that closes an interpolation hole whose code starts at <paramref name="i"/>.</summary>
    private static int HoleEnd(string s, int i)
    {
        for (var depth = 0; i < s.Length;)
        {
            if (LiteralEnd(s, i) is { } end)
            {
                i = end;
                continue;
            }

            if (s[i] == '}' && depth == 0)
            {
                return i + 1;
            }

            depth += s[i] == '{' ? 1 : s[i] == '}' ? -1 : 0;
            i++;
        }

        return s.Length;
    }

    private static char Peek(string s, int i) => i < s.Length ? s[i] : '\0';

    /// <summary>A test attribute's name: [Fact], [Theory(...)], [SkippableFact(...)], [Property(...)], [RootFact], also in a list.</summary>
    [GeneratedRegex(@"(?<=[\[,]\s*)(?:Xunit\.)?(?:\w*Fact|\w*Theory|Property)(?:Attribute)?(?=\s*[\](,])")]
    private static partial Regex TestAttribute();

    /// <summary>A public method's declaration up to its opening parenthesis.</summary>
    [GeneratedRegex(@"\bpublic\b[^;{}()=]*?\b(?<name>[A-Za-z_]\w*)\s*\(")]
    private static partial Regex Declaration();
}
