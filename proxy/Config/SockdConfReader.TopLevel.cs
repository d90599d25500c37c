using L2Balance.Proxy.Rules;

namespace L2Balance.Proxy.Config;

internal sealed partial class SockdConfReader
{
    /// <summary>Dante's default SOCKS port for <c>internal</c> without <c>port =</c>.</summary>
    public const ushort DefaultSocksPort = 1080;

    private static readonly HashSet<string> TopLevelKeywords = new(StringComparer.Ordinal)
    {
        "internal", "external", "external.rotation", "clientmethod", "socksmethod", "method",
        "user.privileged", "user.unprivileged", "user.notprivileged", "user.libwrap",
        "timeout.negotiate", "timeout.io", "timeout.io.tcp", "timeout.io.udp", "timeout.connect",
        "logoutput", "errorlog", "debug", "udp.portrange", "users.file", "workers", "metrics",
    };

    /// <summary>Dante 1.4 server settings that l2proxy refuses by name.</summary>
    private static readonly HashSet<string> UnsupportedTopLevel = new(StringComparer.Ordinal)
    {
        "srchost", "compatibility", "extension", "child.maxidle", "child.maxrequests", "route",
        "timeout.tcp_fin_wait", "resolveprotocol", "udp.connectdst", "oldsocksmethod", "monitor",
        "internal.log", "external.log", "internal.protocol", "external.protocol", "realm", "global-bandwidth",
        "errorlog.mode", "logoutput.mode", "user.libwrap", "libwrap.hosts_access", "pidfile",
    };

    /// <summary>Prefixes of Dante 1.4 setting families l2proxy refuses (<c>socket.*</c>, <c>cpu.*</c>, …).</summary>
    private static readonly string[] UnsupportedPrefixes = ["socket.", "cpu.", "internal.", "external.", "ldap.", "gssapi.", "pam.", "bsdauth.", "child.", "timeout."];

    private static readonly HashSet<string> UnsupportedBlocks = new(StringComparer.Ordinal) { "route", "monitor", "hostid" };

    /// <summary>Dante 1.1 spellings with their 1.4 replacement.</summary>
    private static readonly Dictionary<string, string> RenamedKeywords = new(StringComparer.Ordinal)
    {
        ["method"] = "socksmethod",
        ["connecttimeout"] = "timeout.negotiate",
        ["iotimeout"] = "timeout.io",
    };

    /// <summary>Every keyword name the lexer may split off <c>name:value</c>. A nested class so that it is
    /// built after the keyword sets of all partial files (their initialisation order is unspecified).</summary>
    private static class KeywordIndex
    {
        public static readonly HashSet<string> All = new(
            TopLevelKeywords.Concat(UnsupportedTopLevel).Concat(RuleKeywords).Concat(UnsupportedRuleKeywords).Concat(RenamedKeywords.Keys),
            StringComparer.Ordinal);
    }

    /// <summary>Settings that hold one value: giving one twice is reported, the last one is used.</summary>
    private static readonly HashSet<string> SingleValued = new(StringComparer.Ordinal)
    {
        "external.rotation", "clientmethod", "socksmethod", "user.privileged", "user.unprivileged", "user.notprivileged",
        "timeout.negotiate", "timeout.connect", "timeout.io", "debug", "udp.portrange", "users.file", "metrics", "workers",
    };

    private readonly HashSet<string> _seenTopLevel = new(StringComparer.Ordinal);

    private void ReadTopLevel(Token keyword, List<Token> values)
    {
        if (SingleValued.Contains(keyword.Text) && !_seenTopLevel.Add(keyword.Text))
        {
            Warn(keyword, $"'{keyword.Text}' given again; this later value replaces the earlier one");
        }

        switch (keyword.Text)
        {
            case "internal":
                Mark(nameof(ProxyOptions.Internal), keyword);
                ReadInternal(keyword, values);
                return;
            case "external":
                Mark(nameof(ProxyOptions.External), keyword);
                ReadExternal(keyword, values);
                return;
            case "external.rotation":
                if (One(keyword, values, out var rotation))
                {
                    switch (rotation.Text)
                    {
                        case "none": _rotation = ExternalRotation.None; break;
                        case "route": _rotation = ExternalRotation.Route; break;
                        case "same-same": _rotation = ExternalRotation.SameSame; break;
                        default: Error(rotation, $"bad external.rotation '{rotation.Text}': expected none, route or same-same"); break;
                    }
                }

                return;
            case "clientmethod":
                Mark(nameof(ProxyOptions.ClientMethods), keyword);
                _clientMethods = ReadMethods(keyword, values, client: true);
                return;
            case "socksmethod":
                Mark(nameof(ProxyOptions.SocksMethods), keyword);
                _socksMethods = ReadMethods(keyword, values, client: false);
                return;
            case "user.privileged":
                if (One(keyword, values, out var privileged) && CheckUserName(privileged))
                {
                    _userPrivileged = privileged.Text;
                }

                return;
            case "user.unprivileged" or "user.notprivileged":
                if (One(keyword, values, out var unprivileged) && CheckUserName(unprivileged))
                {
                    _userUnprivileged = unprivileged.Text;
                }

                return;
            case "timeout.negotiate":
                Mark(nameof(ProxyOptions.NegotiateTimeout), keyword);
                _negotiateTimeout = ReadSeconds(keyword, values) ?? _negotiateTimeout;
                return;
            case "timeout.connect":
                Mark(nameof(ProxyOptions.ConnectTimeout), keyword);
                _connectTimeout = ReadSeconds(keyword, values) ?? _connectTimeout;
                return;
            case "timeout.io" or "timeout.io.tcp" or "timeout.io.udp":
                Mark(nameof(ProxyOptions.IoTimeout), keyword);
                if (ReadSeconds(keyword, values) is { } io)
                {
                    if (_ioTimeout is { } earlier && earlier != io)
                    {
                        Error(keyword, $"l2proxy has one io timeout: '{keyword.Text}: {io.TotalSeconds}' differs from the {earlier.TotalSeconds} s given before");
                    }

                    _ioTimeout = io;
                }

                return;
            case "logoutput":
                Mark(nameof(ProxyOptions.LogOutput), keyword);
                _logOutput = ReadLogTargets(keyword, values, _logOutput);
                return;
            case "errorlog":
                Mark(nameof(ProxyOptions.ErrorLog), keyword);
                _errorLog = ReadLogTargets(keyword, values, _errorLog);
                return;
            case "debug":
                Mark(nameof(ProxyOptions.Debug), keyword);
                if (One(keyword, values, out var level))
                {
                    if (level.Text is "0" or "1" or "2")
                    {
                        _debug = level.Text[0] - '0';
                    }
                    else
                    {
                        Error(level, $"bad debug level '{level.Text}': expected 0, 1 or 2");
                    }
                }

                return;
            case "udp.portrange":
                // l2proxy extension: Dante has udp.portrange only inside socks rules; at top level it is
                // this node's port slice for every UDP relay and BIND socket, and outgoing sockets in single-IP mode (docs/design.md#single-ip-mode).
                Mark(nameof(ProxyOptions.PortRange), keyword);
                if (ReadPortRange(keyword, values) is { } range)
                {
                    _portRange = range;
                }

                return;
            case "users.file":
                // l2proxy extension: the users file (l2proxy passwd) for socksmethod username, where Dante uses
                // the system password database or PAM.
                Mark(nameof(ProxyOptions.UsersFile), keyword);
                if (One(keyword, values, out var path))
                {
                    _usersFile = path.Text;
                }

                return;
            case "metrics":
                // l2proxy extension: Prometheus metrics endpoint, written like internal (address and port).
                Mark(nameof(ProxyOptions.Metrics), keyword);
                ReadMetrics(keyword, values);
                return;
            case "workers":
                // l2proxy extension: several worker processes under a supervisor (docs/conventions.md §16; Dante's sockd -N).
                Mark(nameof(ProxyOptions.Workers), keyword);
                if (One(keyword, values, out var workers))
                {
                    if (AddressSyntax.IsDigits(workers.Text) && int.TryParse(workers.Text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var count))
                    {
                        _workers = count;
                    }
                    else
                    {
                        Error(workers, $"bad number of workers '{workers.Text}'");
                    }
                }

                return;
        }

        if (RenamedKeywords.TryGetValue(keyword.Text, out string? replacement))
        {
            Error(keyword, $"'{keyword.Text}' is Dante 1.2 syntax: use {replacement}");
        }
        else if (UnsupportedTopLevel.Contains(keyword.Text) || UnsupportedPrefixes.Any(p => keyword.Text.StartsWith(p, StringComparison.Ordinal)))
        {
            Error(keyword, $"unsupported keyword '{keyword.Text}'");
        }
        else if (RuleKeywords.Contains(keyword.Text))
        {
            Error(keyword, $"'{keyword.Text}' belongs inside a client or socks rule");
        }
        else
        {
            Error(keyword, $"unknown keyword '{keyword.Text}'");
        }
    }

    private void Mark(string setting, Token keyword) => _settingPositions.TryAdd(setting, keyword);

    /// <summary><c>internal: ADDR|IFNAME [port = N] …</c>.</summary>
    private void ReadInternal(Token keyword, List<Token> values)
    {
        if (!AtLeastOne(keyword, values))
        {
            return;
        }

        int i = 0;
        while (i < values.Count)
        {
            var where = values[i++];
            if (where.Kind != TokenKind.Word || where.Text == "port")
            {
                Error(where, $"expected an address or interface name, not '{where.Text}'");
                return;
            }

            ushort port = DefaultSocksPort;
            if (i < values.Count && values[i].Text == "port")
            {
                var portKeyword = values[i++];
                if (i < values.Count && values[i].Text is "=" or "eq")
                {
                    i++;
                }

                if (i >= values.Count)
                {
                    Error(portKeyword, "missing port number after 'port ='");
                    return;
                }

                if (AddressSyntax.ParsePort(values[i].Text, allowZero: false, out port) is { } portError)
                {
                    Error(values[i], portError);
                    return;
                }

                i++;
            }

            if (AddressSyntax.TryParseIP(where.Text, out var address))
            {
                _internal.Add(new ListenSpec(address, null, port));
            }
            else if (AddressSyntax.IsInterfaceName(where.Text))
            {
                _internal.Add(new ListenSpec(null, where.Text, port));
            }
            else
            {
                Error(where, $"'{where.Text}' is neither an address nor an interface name");
            }
        }
    }

    /// <summary><c>metrics: ADDR port = N</c>: one address, the port required.</summary>
    private void ReadMetrics(Token keyword, List<Token> values)
    {
        if (values.Count is not (3 or 4) || values[1].Text != "port" || (values.Count == 4 && values[2].Text is not ("=" or "eq")))
        {
            Error(keyword, "expected 'metrics: ADDR port = N'");
            return;
        }

        var portToken = values[^1];
        if (!AddressSyntax.TryParseIP(values[0].Text, out var address))
        {
            Error(values[0], $"metrics: '{values[0].Text}' is not an address");
        }
        else if (AddressSyntax.ParsePort(portToken.Text, allowZero: false, out ushort port) is { } portError)
        {
            Error(portToken, portError);
        }
        else
        {
            _metrics = new System.Net.IPEndPoint(address, port);
        }
    }

    private void ReadExternal(Token keyword, List<Token> values)
    {
        if (!AtLeastOne(keyword, values))
        {
            return;
        }

        foreach (var value in values)
        {
            if (AddressSyntax.TryParseIP(value.Text, out var address))
            {
                _external.Add(new ExternalSpec(address, null));
            }
            else if (value.Kind == TokenKind.Word && AddressSyntax.IsInterfaceName(value.Text) && value.Text != "port")
            {
                _external.Add(new ExternalSpec(null, value.Text));
            }
            else
            {
                Error(value, value.Text == "port"
                    ? "external takes no port: the kernel picks the source port"
                    : $"'{value.Text}' is neither an address nor an interface name");
                return;
            }
        }
    }

    private List<MethodKind>? ReadMethods(Token keyword, List<Token> values, bool client)
    {
        if (!AtLeastOne(keyword, values))
        {
            return null;
        }

        var methods = new List<MethodKind>();
        bool ok = true;
        foreach (var value in values)
        {
            MethodKind? method = value.Text switch
            {
                "none" => MethodKind.None,
                "username" when !client => MethodKind.Username,
                "gssapi" when !client => MethodKind.Gssapi,
                _ => null,
            };
            if (method is null)
            {
                ok = false;
                Error(value, value.Text switch
                {
                    "username" => "unsupported clientmethod 'username': username is a socksmethod (client rules only see the address)",
                    "gssapi" => "unsupported clientmethod 'gssapi': gssapi is a socksmethod (Dante's clientmethod has no gssapi)",
                    "bsdauth" or "rfc931" => $"unsupported method '{value.Text}'",
                    _ when value.Text.StartsWith("pam", StringComparison.Ordinal) => $"unsupported method '{value.Text}'",
                    _ => $"unknown method '{value.Text}'",
                });
            }
            else if (methods.Contains(method.Value))
            {
                ok = false;
                Error(value, $"method '{value.Text}' listed twice");
            }
            else
            {
                methods.Add(method.Value);
            }
        }

        return ok ? methods : null;
    }

    private bool CheckUserName(Token name)
    {
        if (!SockdConfLexer.IsIdentifier(name.Text) || name.Text.Length > 32)
        {
            Error(name, $"bad user name '{name.Text}'");
            return false;
        }

        return true;
    }

    private TimeSpan? ReadSeconds(Token keyword, List<Token> values)
    {
        if (!One(keyword, values, out var value))
        {
            return null;
        }

        if (AddressSyntax.ParseSeconds(value.Text, out var duration) is { } error)
        {
            Error(value, $"{keyword.Text}: {error}");
            return null;
        }

        return duration;
    }

    private List<LogTarget>? ReadLogTargets(Token keyword, List<Token> values, List<LogTarget>? earlier)
    {
        if (!AtLeastOne(keyword, values))
        {
            return earlier;
        }

        // Dante adds to the list when the keyword repeats.
        var targets = earlier ?? [];
        foreach (var value in values)
        {
            if (AddressSyntax.ParseLogTarget(value.Text, out var target) is { } error)
            {
                Error(value, error);
            }
            else if (!targets.Contains(target))
            {
                targets.Add(target);
            }
        }

        return targets.Count > 0 ? targets : earlier;
    }

    /// <summary><c>LO-HI</c>, also written <c>LO - HI</c>.</summary>
    private PortRange? ReadPortRange(Token keyword, List<Token> values)
    {
        if (!AtLeastOne(keyword, values))
        {
            return null;
        }

        if (values.Count > 3 || values.Any(v => v.Kind != TokenKind.Word))
        {
            Error(values[0], $"bad {keyword.Text}: expected LO-HI");
            return null;
        }

        string joined = string.Concat(values.Select(v => v.Text));
        if (AddressSyntax.ParsePortRange(joined, out var range) is { } error)
        {
            Error(values[0], error);
            return null;
        }

        return range;
    }
}
