using L2Balance.Proxy.Rules;

namespace L2Balance.Proxy.Config;

/// <summary>The state of one parse: tokens, a cursor, and the settings found so far.</summary>
internal sealed partial class SockdConfReader
{
    private readonly string _fileName;
    private readonly List<Token> _tokens;
    private readonly List<ConfigError> _errors = [];
    private readonly List<string> _warnings = [];
    private int _next;

    // Where each ProxyOptions setting was given, to position validation errors.
    private readonly Dictionary<string, Token> _settingPositions = new(StringComparer.Ordinal);

    private readonly List<ListenSpec> _internal = [];
    private readonly List<ExternalSpec> _external = [];
    private ExternalRotation _rotation = ExternalRotation.None;
    private List<MethodKind>? _clientMethods;
    private List<MethodKind>? _socksMethods;
    private string? _usersFile;
    private string? _userPrivileged;
    private string? _userUnprivileged;
    private TimeSpan? _negotiateTimeout;
    private TimeSpan? _ioTimeout;
    private TimeSpan? _connectTimeout;
    private PortRange? _portRange;
    private System.Net.IPEndPoint? _metrics;
    private int _workers = 1;
    private List<LogTarget>? _logOutput;
    private List<LogTarget>? _errorLog;
    private int _debug;
    private readonly List<ClientRule> _clientRules = [];
    private readonly List<SocksRule> _socksRules = [];

    public SockdConfReader(string text, string fileName)
    {
        _fileName = fileName;
        _tokens = SockdConfLexer.Tokenize(text, KeywordIndex.All);
    }

    public ConfigResult Read()
    {
        while (_next < _tokens.Count)
        {
            var token = _tokens[_next];
            switch (token.Kind)
            {
                case TokenKind.Keyword:
                    _next++;
                    ReadTopLevel(token, TakeValues(inBlock: false));
                    break;
                case TokenKind.Word:
                    ReadBlockStatement();
                    break;
                case TokenKind.LBrace:
                    Error(token, "unexpected '{'");
                    SkipBlock();
                    break;
                default:
                    Error(token, $"unexpected '{token.Text}'");
                    _next++;
                    break;
            }
        }

        var options = new ProxyOptions
        {
            Internal = _internal,
            External = _external,
            ExternalRotation = _rotation,
            ClientMethods = _clientMethods ?? [MethodKind.None],
            SocksMethods = _socksMethods ?? [MethodKind.None],
            UsersFile = _usersFile,
            UserPrivileged = _userPrivileged,
            UserUnprivileged = _userUnprivileged,
            PortRange = _portRange,
            Metrics = _metrics,
            Workers = _workers,
            ClientRules = _clientRules,
            SocksRules = _socksRules,
            Debug = _debug,
            Source = _fileName,
        };
        options = options with
        {
            NegotiateTimeout = _negotiateTimeout ?? options.NegotiateTimeout,
            IoTimeout = _ioTimeout ?? options.IoTimeout,
            ConnectTimeout = _connectTimeout ?? options.ConnectTimeout,
            LogOutput = _logOutput ?? options.LogOutput,
            ErrorLog = _errorLog ?? options.ErrorLog,
        };

        var validation = ConfigValidator.Validate(options);
        foreach (var problem in validation.Errors)
        {
            if (problem.Rule is { Line: > 0 } rule)
            {
                _errors.Add(new ConfigError(_fileName, rule.Line, 1, problem.Message));
            }
            else if (_settingPositions.TryGetValue(problem.Setting, out var at))
            {
                Error(at, problem.Message);
            }
            else
            {
                _errors.Add(new ConfigError(_fileName, 0, 0, problem.Message));
            }
        }

        _warnings.AddRange(validation.Warnings);
        var ordered = _errors.OrderBy(e => e.Line).ThenBy(e => e.Column).ToList();
        return new ConfigResult(ordered.Count == 0 ? options : null, ordered, _warnings);
    }

    private void Error(Token at, string message) => _errors.Add(new ConfigError(_fileName, at.Line, at.Column, message));

    private void Warn(Token at, string message) => _warnings.Add($"{_fileName}:{at.Line}:{at.Column}: {message}");

    private Token? Peek(int ahead = 0) => _next + ahead < _tokens.Count ? _tokens[_next + ahead] : null;

    /// <summary>
    /// The values of a <c>keyword:</c>: tokens up to the next keyword, brace, or (at top level)
    /// the start of a block such as <c>client pass {</c> or <c>route {</c>. Values may span lines, as
    /// in Dante, so a stray word after a list-valued keyword (<c>internal:</c>) is read as one more value.
    /// </summary>
    private List<Token> TakeValues(bool inBlock)
    {
        var values = new List<Token>();
        while (Peek() is { } token && token.Kind is TokenKind.Word or TokenKind.Operator)
        {
            if (inBlock && token.Kind == TokenKind.Word && WordRuleKeywords.Contains(token.Text))
            {
                break;
            }

            if (!inBlock && token.Kind == TokenKind.Word
                && (Peek(1) is { Kind: TokenKind.LBrace }
                    || (token.Text is "client" or "socks" && Peek(1) is { Kind: TokenKind.Word } && Peek(2) is { Kind: TokenKind.LBrace })))
            {
                break;
            }

            values.Add(token);
            _next++;
        }

        return values;
    }

    /// <summary>Skips from a '{' to its matching '}' (or the end).</summary>
    private void SkipBlock()
    {
        int depth = 0;
        while (Peek() is { } token)
        {
            _next++;
            if (token.Kind == TokenKind.LBrace)
            {
                depth++;
            }
            else if (token.Kind == TokenKind.RBrace && --depth <= 0)
            {
                return;
            }
        }
    }

    /// <summary>A word at top level: <c>client pass {</c>, <c>socks block {</c>, <c>route {</c>, or garbage.</summary>
    private void ReadBlockStatement()
    {
        var first = _tokens[_next];
        var header = new List<Token>();
        while (Peek() is { Kind: TokenKind.Word } word && header.Count < 2)
        {
            header.Add(word);
            _next++;
        }

        if (Peek() is not { Kind: TokenKind.LBrace } brace)
        {
            Error(first, header.Count == 2 && first.Text is "client" or "socks"
                ? $"expected '{{' after '{first.Text} {header[1].Text}'"
                : SockdConfLexer.IsIdentifier(first.Text) ? $"unknown keyword '{first.Text}'" : $"unexpected '{first.Text}'");
            // Resynchronise at the next keyword or block.
            while (Peek() is { Kind: TokenKind.Word or TokenKind.Operator or TokenKind.RBrace } && !(Peek(1) is { Kind: TokenKind.LBrace }))
            {
                _next++;
            }

            return;
        }

        string kind = first.Text;
        string? action = header.Count == 2 ? header[1].Text : null;
        if (kind is "client" or "socks" && action is "pass" or "block")
        {
            var ruleAction = action == "pass" ? RuleAction.Pass : RuleAction.Block;
            _next++;
            if (kind == "client")
            {
                ReadClientRule(first, brace, ruleAction);
            }
            else
            {
                ReadSocksRule(first, brace, ruleAction);
            }

            return;
        }

        if (kind is "client" or "socks")
        {
            Error(header.Count == 2 ? header[1] : first, $"expected 'pass' or 'block' after '{kind}'");
        }
        else if (kind is "pass" or "block" && header.Count == 1)
        {
            Error(first, $"'{kind} {{' is Dante 1.2 syntax: write 'socks {kind} {{' (or 'client {kind} {{')");
        }
        else if (UnsupportedBlocks.Contains(kind))
        {
            Error(first, $"unsupported keyword '{kind}'");
        }
        else
        {
            Error(first, SockdConfLexer.IsIdentifier(kind) ? $"unknown keyword '{kind}'" : $"unexpected '{kind}'");
        }

        SkipBlock();
    }

    /// <summary>Exactly one value for <paramref name="keyword"/>, or an error.</summary>
    private bool One(Token keyword, List<Token> values, out Token value)
    {
        value = keyword;
        if (values.Count == 0)
        {
            Error(keyword, $"missing value for '{keyword.Text}'");
            return false;
        }

        if (values.Count > 1)
        {
            Error(values[1], $"'{keyword.Text}' takes one value; unexpected '{values[1].Text}'");
            return false;
        }

        value = values[0];
        if (value.Kind != TokenKind.Word)
        {
            Error(value, $"unexpected '{value.Text}' after '{keyword.Text}'");
            return false;
        }

        return true;
    }

    private bool AtLeastOne(Token keyword, List<Token> values)
    {
        if (values.Count == 0)
        {
            Error(keyword, $"missing value for '{keyword.Text}'");
            return false;
        }

        return true;
    }
}
