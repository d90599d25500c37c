namespace L2Balance.Proxy.Config;

internal enum TokenKind
{
    /// <summary>Any run of characters that is not a separator: an address, a number, a name.</summary>
    Word,
    /// <summary><c>name:</c>; <see cref="Token.Text"/> is the name without the colon.</summary>
    Keyword,
    LBrace,
    RBrace,
    /// <summary><c>=</c>, <c>!=</c>, <c>&lt;</c>, <c>&lt;=</c>, <c>&gt;</c>, <c>&gt;=</c>.</summary>
    Operator,
}

/// <summary>A token with its 1-based position (columns count UTF-16 code units, a tab is one).</summary>
internal readonly record struct Token(TokenKind Kind, string Text, int Line, int Column)
{
    public override string ToString() => Kind switch
    {
        TokenKind.Keyword => Text + ":",
        _ => Text,
    };
}

/// <summary>
/// Splits sockd.conf text into tokens. Dante's grammar is free-form: <c>#</c> starts a comment
/// to the end of the line, newlines are whitespace, and <c>port=1080</c> equals <c>port = 1080</c>.
/// The one subtlety is the colon: it ends a keyword (<c>from:</c>) but also appears inside IPv6
/// addresses (<c>::/0</c>, <c>fe80::1</c>), so a word is a keyword only when what precedes its final
/// colon is an identifier, or when it starts with a known keyword followed by a colon (<c>from:0/0</c>).
/// </summary>
internal static class SockdConfLexer
{
    public static List<Token> Tokenize(string text, IReadOnlySet<string> knownKeywords)
    {
        var tokens = new List<Token>();
        int line = 1, column = 1, i = 0;
        while (i < text.Length)
        {
            char c = text[i];
            if (c == '\n')
            {
                line++;
                column = 1;
                i++;
                continue;
            }

            if (char.IsWhiteSpace(c))
            {
                Advance(ref i, ref column, 1);
                continue;
            }

            if (c == '#')
            {
                while (i < text.Length && text[i] != '\n')
                {
                    Advance(ref i, ref column, 1);
                }

                continue;
            }

            switch (c)
            {
                case '{':
                    tokens.Add(new Token(TokenKind.LBrace, "{", line, column));
                    Advance(ref i, ref column, 1);
                    continue;
                case '}':
                    tokens.Add(new Token(TokenKind.RBrace, "}", line, column));
                    Advance(ref i, ref column, 1);
                    continue;
                case '=':
                    tokens.Add(new Token(TokenKind.Operator, "=", line, column));
                    Advance(ref i, ref column, 1);
                    continue;
                case '!' or '<' or '>':
                    int length = i + 1 < text.Length && text[i + 1] == '=' ? 2 : 1;
                    string op = text.Substring(i, length);
                    // A lone '!' is no operator; it stays a word so the parser reports it.
                    tokens.Add(new Token(op == "!" ? TokenKind.Word : TokenKind.Operator, op, line, column));
                    Advance(ref i, ref column, length);
                    continue;
            }

            int start = i, startColumn = column;
            while (i < text.Length && !char.IsWhiteSpace(text[i]) && !IsSeparator(text[i]))
            {
                Advance(ref i, ref column, 1);
            }

            AddWord(tokens, text[start..i], line, startColumn, knownKeywords);
        }

        return tokens;
    }

    private static void Advance(ref int i, ref int column, int count)
    {
        i += count;
        column += count;
    }

    private static bool IsSeparator(char c) => c is '{' or '}' or '#' or '=' or '!' or '<' or '>';

    private static void AddWord(List<Token> tokens, string word, int line, int column, IReadOnlySet<string> knownKeywords)
    {
        // "name :" written with a space before the colon.
        if (word == ":" && tokens.Count > 0 && tokens[^1] is { Kind: TokenKind.Word } previous && IsIdentifier(previous.Text))
        {
            tokens[^1] = previous with { Kind = TokenKind.Keyword };
            return;
        }

        if (word.Length > 1 && word[^1] == ':' && IsIdentifier(word.AsSpan(0, word.Length - 1)))
        {
            tokens.Add(new Token(TokenKind.Keyword, word[..^1], line, column));
            return;
        }

        int colon = word.IndexOf(':', StringComparison.Ordinal);
        // No keyword is a hex string, so "to:::/0" is "to:" then "::/0", never an IPv6 address.
        if (colon > 0 && colon < word.Length - 1 && knownKeywords.Contains(word[..colon]))
        {
            tokens.Add(new Token(TokenKind.Keyword, word[..colon], line, column));
            tokens.Add(new Token(TokenKind.Word, word[(colon + 1)..], line, column + colon + 1));
            return;
        }

        tokens.Add(new Token(TokenKind.Word, word, line, column));
    }

    /// <summary>Letters, digits, '.', '_' and '-', starting with a letter or '_'.</summary>
    public static bool IsIdentifier(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty || !(char.IsAsciiLetter(text[0]) || text[0] == '_'))
        {
            return false;
        }

        foreach (char c in text)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                return false;
            }
        }

        return true;
    }
}
