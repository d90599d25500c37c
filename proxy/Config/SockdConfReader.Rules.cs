using L2Balance.Proxy.Protocol;
using L2Balance.Proxy.Rules;

namespace L2Balance.Proxy.Config;

internal sealed partial class SockdConfReader
{
    private static readonly HashSet<string> RuleKeywords = new(StringComparer.Ordinal)
    {
        "from", "to", "log", "command", "protocol", "socksmethod", "user", "udp.portrange",
    };

    /// <summary>Dante 1.4 rule keywords written without a colon before another keyword (<c>redirect from: …</c>, <c>bounce to: …</c>).</summary>
    private static readonly HashSet<string> WordRuleKeywords = new(StringComparer.Ordinal) { "redirect", "bounce" };

    private static readonly HashSet<string> ClientRuleKeywords = new(StringComparer.Ordinal) { "from", "to", "log" };

    /// <summary>Dante 1.4 rule keywords l2proxy refuses by name.</summary>
    private static readonly HashSet<string> UnsupportedRuleKeywords = new(StringComparer.Ordinal)
    {
        "libwrap", "bandwidth", "redirect", "session.max",
        "session.throttle", "session.state.key", "session.state.max", "session.state.throttle", "session.inheritable",
        "clientmethod", "maxsessions", "group", "pam.servicename", "bsdauth.stylename",
        "proxyprotocol", "hostid", "hostindex", "bounce", "via", "method", "socket.sndbuf", "socket.rcvbuf",
        "timeout.negotiate", "timeout.io", "timeout.connect", "ldap.url", "ldap.domain", "ldap.filter",
    };

    /// <summary>Keywords of a client rule only: the GSS-API context is established before any request names a destination.</summary>
    private static readonly HashSet<string> GssapiRuleKeywords = new(StringComparer.Ordinal)
    {
        "gssapi.keytab", "gssapi.servicename", "gssapi.enctype", "clientcompatibility",
    };

    private static readonly Dictionary<string, GssapiProtection> EncTypeWords = new(StringComparer.Ordinal)
    {
        ["clear"] = GssapiProtection.Clear,
        ["integrity"] = GssapiProtection.Integrity,
        ["confidentiality"] = GssapiProtection.Confidentiality,
        ["per-message"] = GssapiProtection.PerMessage,
    };

    private static readonly string[] UnsupportedRulePrefixes = ["gssapi.", "ldap.", "pam.", "session.", "socket.", "timeout.", "bsdauth.", "redirect", "libwrap"];

    /// <summary>What one rule block has set so far; each keyword at most once.</summary>
    private sealed class RuleParts
    {
        public AddressMatcher? From;
        public AddressMatcher? To;
        public RuleLog Log;
        public HashSet<RuleCommand>? Commands;
        public RuleProtocol Protocols = RuleProtocol.Any;
        public HashSet<MethodKind>? Methods;
        public HashSet<string>? Users;
        public PortRange? UdpPortRange;
        public string? GssapiKeytab;
        public string? GssapiServiceName;
        public HashSet<GssapiProtection>? GssapiEncTypes;
        public bool NecGssapi;
        public readonly HashSet<string> Seen = new(StringComparer.Ordinal);
    }

    private void ReadClientRule(Token start, Token brace, RuleAction action)
    {
        var parts = ReadRuleBody(start, brace, client: true);
        if (parts is not null && CheckFromTo(start, parts))
        {
            var gssapi = parts.GssapiKeytab is null && parts.GssapiServiceName is null && parts.GssapiEncTypes is null && !parts.NecGssapi
                ? null
                : new GssapiSettings(parts.GssapiKeytab, parts.GssapiServiceName, parts.GssapiEncTypes, parts.NecGssapi);
            _clientRules.Add(new ClientRule(action, parts.From!, parts.To!, parts.Log, new RuleSource(_clientRules.Count + 1, start.Line), gssapi));
        }
    }

    private void ReadSocksRule(Token start, Token brace, RuleAction action)
    {
        var parts = ReadRuleBody(start, brace, client: false);
        if (parts is not null && CheckFromTo(start, parts))
        {
            _socksRules.Add(new SocksRule(
                action, parts.From!, parts.To!, parts.Commands, parts.Protocols, parts.Methods, parts.Users,
                parts.UdpPortRange, parts.Log, new RuleSource(_socksRules.Count + 1, start.Line)));
        }
    }

    private bool CheckFromTo(Token start, RuleParts parts)
    {
        // Dante requires both; an omitted side would silently mean "anything".
        if (parts.From is null || parts.To is null)
        {
            if (parts.Seen.Contains(parts.From is null ? "from" : "to"))
            {
                return false; // Given but bad: already reported.
            }

            Error(start, $"{start.Text} rule needs both 'from:' and 'to:'{(parts.From is null ? " (no 'from:')" : " (no 'to:')")}");
            return false;
        }

        return true;
    }

    /// <summary>Reads <c>{ key: values … }</c>; null when the block is not closed.</summary>
    private RuleParts? ReadRuleBody(Token start, Token brace, bool client)
    {
        string kind = client ? "client rule" : "socks rule";
        var parts = new RuleParts();
        while (true)
        {
            if (Peek() is not { } token)
            {
                Error(brace, $"{start.Text} rule is not closed with '}}'");
                return null;
            }

            _next++;
            switch (token.Kind)
            {
                case TokenKind.RBrace:
                    return parts;
                case TokenKind.Keyword:
                    var values = TakeValues(inBlock: true);
                    if (!parts.Seen.Add(token.Text) && RuleKeywords.Contains(token.Text))
                    {
                        Error(token, $"'{token.Text}' given twice in {kind}");
                        continue;
                    }

                    ReadRuleKeyword(token, values, parts, client, kind);
                    break;
                case TokenKind.Word when WordRuleKeywords.Contains(token.Text):
                    Error(token, $"unsupported keyword '{token.Text}' in {kind}");
                    if (Peek() is { Kind: TokenKind.Keyword })
                    {
                        _next++;
                        TakeValues(inBlock: true);
                    }

                    break;
                default:
                    Error(token, $"unexpected '{token.Text}' in {kind}: expected 'keyword:' or '}}'");
                    break;
            }
        }
    }

    private void ReadRuleKeyword(Token keyword, List<Token> values, RuleParts parts, bool client, string kind)
    {
        if (GssapiRuleKeywords.Contains(keyword.Text))
        {
            ReadGssapiKeyword(keyword, values, parts, client, kind);
            return;
        }

        if (client && RuleKeywords.Contains(keyword.Text) && !ClientRuleKeywords.Contains(keyword.Text))
        {
            Error(keyword, $"'{keyword.Text}' is not allowed in a client rule (only from, to and log; use a socks rule)");
            return;
        }

        switch (keyword.Text)
        {
            case "from":
                parts.From = ReadRuleAddress(keyword, values, isFrom: true);
                return;
            case "to":
                parts.To = ReadRuleAddress(keyword, values, isFrom: false);
                return;
            case "log":
                parts.Log = ReadFlags(keyword, values, LogWords, RuleLog.None, (a, b) => a | b);
                return;
            case "protocol":
                parts.Protocols = ReadFlags(keyword, values, ProtocolWords, RuleProtocol.None, (a, b) => a | b);
                return;
            case "command":
                parts.Commands = ReadSet(keyword, values, CommandWords);
                return;
            case "socksmethod":
                if (ReadMethods(keyword, values, client: false) is { } methods)
                {
                    parts.Methods = [.. methods];
                }

                return;
            case "user":
                if (AtLeastOne(keyword, values))
                {
                    parts.Users = new HashSet<string>(StringComparer.Ordinal);
                    foreach (var user in values)
                    {
                        if (user.Kind != TokenKind.Word || user.Text.Contains(':', StringComparison.Ordinal))
                        {
                            Error(user, $"bad user name '{user.Text}'");
                        }
                        else
                        {
                            parts.Users.Add(user.Text);
                        }
                    }
                }

                return;
            case "udp.portrange":
                parts.UdpPortRange = ReadPortRange(keyword, values);
                return;
        }

        if (UnsupportedRuleKeywords.Contains(keyword.Text) || UnsupportedRulePrefixes.Any(p => keyword.Text.StartsWith(p, StringComparison.Ordinal)))
        {
            Error(keyword, $"unsupported keyword '{keyword.Text}' in {kind}");
        }
        else
        {
            Error(keyword, $"unknown keyword '{keyword.Text}' in {kind}");
        }
    }

    private void ReadGssapiKeyword(Token keyword, List<Token> values, RuleParts parts, bool client, string kind)
    {
        if (!client)
        {
            Error(keyword, $"'{keyword.Text}' is not allowed in a {kind}: put it in the client rule (l2proxy establishes the GSS-API context before the request)");
            return;
        }

        if (!parts.Seen.Add("gssapi:" + keyword.Text))
        {
            Error(keyword, $"'{keyword.Text}' given twice in {kind}");
            return;
        }

        if (!AtLeastOne(keyword, values))
        {
            return;
        }

        switch (keyword.Text)
        {
            case "gssapi.enctype":
                parts.GssapiEncTypes = ReadSet(keyword, values, EncTypeWords);
                return;
            case "clientcompatibility":
                foreach (var value in values)
                {
                    if (value.Text == "necgssapi")
                    {
                        parts.NecGssapi = true;
                    }
                    else
                    {
                        Error(value, $"unknown clientcompatibility '{value.Text}' (expected necgssapi)");
                    }
                }

                return;
        }

        if (values.Count != 1 || values[0].Kind != TokenKind.Word)
        {
            Error(keyword, $"'{keyword.Text}' takes one value");
            return;
        }

        if (keyword.Text == "gssapi.keytab")
        {
            // Dante writes FILE:/path as well as /path; only files are supported (no MEMORY: or other kt types).
            string path = values[0].Text.StartsWith("FILE:", StringComparison.Ordinal) ? values[0].Text[5..] : values[0].Text;
            if (!Path.IsPathFullyQualified(path))
            {
                Error(values[0], $"gssapi.keytab '{values[0].Text}' must be an absolute path");
                return;
            }

            parts.GssapiKeytab = path;
        }
        else
        {
            parts.GssapiServiceName = values[0].Text;
        }
    }

    private static readonly Dictionary<string, RuleLog> LogWords = new(StringComparer.Ordinal)
    {
        ["connect"] = RuleLog.Connect,
        ["disconnect"] = RuleLog.Disconnect,
        ["data"] = RuleLog.Data,
        ["error"] = RuleLog.Error,
        ["iooperation"] = RuleLog.IOOperation,
        ["tcpinfo"] = RuleLog.TcpInfo,
    };

    private static readonly Dictionary<string, RuleProtocol> ProtocolWords = new(StringComparer.Ordinal)
    {
        ["tcp"] = RuleProtocol.Tcp,
        ["udp"] = RuleProtocol.Udp,
    };

    private static readonly Dictionary<string, RuleCommand> CommandWords = new(StringComparer.Ordinal)
    {
        ["connect"] = RuleCommand.Connect,
        ["bind"] = RuleCommand.Bind,
        ["udpassociate"] = RuleCommand.UdpAssociate,
        ["bindreply"] = RuleCommand.BindReply,
        ["udpreply"] = RuleCommand.UdpReply,
    };

    private T ReadFlags<T>(Token keyword, List<Token> values, Dictionary<string, T> words, T none, Func<T, T, T> or)
    {
        var result = none;
        if (AtLeastOne(keyword, values))
        {
            foreach (var value in values)
            {
                if (words.TryGetValue(value.Text, out var flag))
                {
                    result = or(result, flag);
                }
                else
                {
                    Error(value, $"unknown {keyword.Text} value '{value.Text}' (expected {string.Join(", ", words.Keys)})");
                }
            }
        }

        return result;
    }

    private HashSet<T>? ReadSet<T>(Token keyword, List<Token> values, Dictionary<string, T> words)
    {
        if (!AtLeastOne(keyword, values))
        {
            return null;
        }

        var set = new HashSet<T>();
        foreach (var value in values)
        {
            if (words.TryGetValue(value.Text, out var item))
            {
                set.Add(item);
            }
            else
            {
                Error(value, $"unknown {keyword.Text} '{value.Text}' (expected {string.Join(", ", words.Keys)})");
            }
        }

        return set;
    }

    /// <summary>
    /// <c>ADDRESS [port OP N | port LO - HI]</c>. Operators: <c>eq =</c>, <c>neq ne !=</c>, <c>ge &gt;=</c>,
    /// <c>le &lt;=</c>, <c>gt &gt;</c>, <c>lt &lt;</c>; a range is <c>port LO - HI</c> as in Dante's manual
    /// (also <c>LO-HI</c>); <c>port N</c> alone means equal.
    /// </summary>
    private AddressMatcher? ReadRuleAddress(Token keyword, List<Token> values, bool isFrom)
    {
        if (!AtLeastOne(keyword, values))
        {
            return null;
        }

        var addressToken = values[0];
        if (addressToken.Kind != TokenKind.Word || addressToken.Text == "port")
        {
            Error(addressToken, $"expected an address after '{keyword.Text}:', not '{addressToken.Text}'");
            return null;
        }

        if (AddressSyntax.ParseRuleAddress(addressToken.Text, out var matcher, out bool hostBits) is { } error)
        {
            Error(addressToken, error);
            return null;
        }

        if (hostBits)
        {
            Warn(addressToken, $"host bits set in '{addressToken.Text}'; matching {matcher.Network}/{matcher.PrefixLength}");
        }

        if (isFrom && matcher.Domain is not null)
        {
            Warn(addressToken, $"'from: {addressToken.Text}' never matches: l2proxy does not look up client names");
        }

        if (values.Count == 1)
        {
            return matcher;
        }

        if (values[1].Text != "port")
        {
            Error(values[1], $"unexpected '{values[1].Text}' after the address in '{keyword.Text}:'");
            return null;
        }

        return ReadPortMatcher(values[1], values.GetRange(2, values.Count - 2)) is { } port ? matcher with { Port = port } : null;
    }

    private PortMatcher? ReadPortMatcher(Token portKeyword, List<Token> rest)
    {
        if (rest.Count == 0)
        {
            Error(portKeyword, "missing port after 'port'");
            return null;
        }

        PortOperator? op = rest[0].Text switch
        {
            "=" or "eq" => PortOperator.Eq,
            "!=" or "neq" or "ne" => PortOperator.Neq,
            ">=" or "ge" => PortOperator.Ge,
            "<=" or "le" => PortOperator.Le,
            ">" or "gt" => PortOperator.Gt,
            "<" or "lt" => PortOperator.Lt,
            _ => null,
        };

        if (op is { } explicitOp)
        {
            if (rest.Count != 2)
            {
                Error(rest.Count < 2 ? rest[0] : rest[2], rest.Count < 2 ? $"missing port number after '{rest[0].Text}'" : $"unexpected '{rest[2].Text}' after the port");
                return null;
            }

            if (AddressSyntax.ParsePort(rest[1].Text, allowZero: true, out ushort port) is { } portError)
            {
                Error(rest[1], portError);
                return null;
            }

            return new PortMatcher(explicitOp, port);
        }

        // "port N", "port LO-HI", "port LO - HI", "port LO- HI", "port LO -HI".
        if (rest.Count > 3 || rest.Any(t => t.Kind != TokenKind.Word))
        {
            Error(rest[0], "bad port: expected 'port OP N' or 'port LO - HI'");
            return null;
        }

        string joined = string.Concat(rest.Select(t => t.Text));
        if (!joined.Contains('-', StringComparison.Ordinal))
        {
            if (rest.Count != 1)
            {
                Error(rest[1], $"unexpected '{rest[1].Text}' after the port");
                return null;
            }

            if (AddressSyntax.ParsePort(joined, allowZero: true, out ushort single) is { } singleError)
            {
                Error(rest[0], singleError);
                return null;
            }

            return new PortMatcher(PortOperator.Eq, single);
        }

        if (AddressSyntax.ParsePortRange(joined, out var range) is { } rangeError)
        {
            Error(rest[0], rangeError);
            return null;
        }

        return new PortMatcher(PortOperator.Range, range.Low, range.High);
    }
}
