using System.Globalization;
using System.Net;
using L2Balance.Proxy.Rules;

namespace L2Balance.Proxy.Config;

/// <summary>
/// What the command line asks for. A closed hierarchy: the only subclasses are the nested
/// records, so a <c>switch</c> over them is complete.
/// </summary>
public abstract record CommandLineResult
{
    private CommandLineResult()
    {
    }

    /// <summary>Run the proxy with these options (from flags or <c>--config FILE</c>).</summary>
    public sealed record Run(ProxyOptions Options, IReadOnlyList<string> Warnings) : CommandLineResult;

    /// <summary><c>--check-config FILE</c>: parse, print errors or "configuration OK", exit (like <c>relayd -n</c>).</summary>
    public sealed record CheckConfig(string Path) : CommandLineResult;

    /// <summary><c>passwd --users FILE USER</c>: set a user's password (read from the terminal by the caller).</summary>
    public sealed record Passwd(string UsersFile, string User) : CommandLineResult;

    /// <summary><c>--help</c>/<c>-h</c>: print <see cref="Text"/> and exit 0.</summary>
    public sealed record Help(string Text) : CommandLineResult;

    /// <summary><c>--version</c>.</summary>
    public sealed record Version : CommandLineResult;

    /// <summary>The command line is wrong; every problem found. (Named Invalid, not Error: CA1716, Error is a VB keyword.)</summary>
    public sealed record Invalid(IReadOnlyList<string> Messages) : CommandLineResult;
}

/// <summary>
/// The flags front end (docs/conventions.md §17): builds the same <see cref="ProxyOptions"/> as sockd.conf does and
/// runs the same <see cref="ConfigValidator"/>. Flags take <c>--flag VALUE</c> or <c>--flag=VALUE</c>.
/// </summary>
public static class CommandLine
{
    /// <summary>Rules made from flags log what Dante's usual <c>log: connect disconnect error</c> logs.</summary>
    private const RuleLog FlagRuleLog = RuleLog.Connect | RuleLog.Disconnect | RuleLog.Error;

    private static readonly HashSet<RuleCommand> RequestCommands = [RuleCommand.Connect, RuleCommand.Bind, RuleCommand.UdpAssociate];

    private static readonly HashSet<RuleCommand> ReplyCommands = [RuleCommand.BindReply, RuleCommand.UdpReply];

    public const string HelpText = """
        usage: l2proxy --listen ADDR:PORT [--listen ADDR:PORT]... [options]
               l2proxy --config FILE [--debug N]
               l2proxy --check-config FILE
               l2proxy passwd --users FILE USER
               l2proxy --help | --version

        options:
          --listen ADDR:PORT         address to accept SOCKS clients on (1.2.3.4:1080, [::1]:1080)
          --external ADDR|IFNAME     address for outgoing traffic (repeatable)
          --allow CIDR               serve clients from this network (repeatable; default: any)
          --users FILE               require username/password from this users file
          --port-range LO-HI         ports for UDP relay and BIND sockets
          --negotiate-timeout SECS   handshake limit (default 30)
          --io-timeout SECS          idle limit, 0 = none (default 0)
          --connect-timeout SECS     outgoing connect limit (default 30)
          --max-clients N            concurrent sessions (default 10000)
          --max-per-client N         concurrent sessions per client address (default 1000)
          --max-udp N                concurrent UDP associations (default 2000)
          --log TARGET               stderr, stdout, syslog[/FACILITY] or an absolute path (repeatable)
          --debug N                  0, 1 or 2
          --metrics ADDR:PORT        serve Prometheus metrics on http://ADDR:PORT/metrics
          --workers N                N worker processes under a supervisor (default 1: no supervisor)
        """;

    private static readonly HashSet<string> ValueFlags = new(StringComparer.Ordinal)
    {
        "--listen", "--external", "--allow", "--users", "--port-range", "--negotiate-timeout", "--io-timeout",
        "--connect-timeout", "--max-clients", "--max-per-client", "--max-udp", "--log", "--debug", "--config",
        "--check-config", "--workers", "--metrics",
    };

    public static CommandLineResult Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Count > 0 && args[0] == "passwd")
        {
            return ParsePasswd(args);
        }

        var errors = new List<string>();
        var flags = new List<(string Name, string Value)>();
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            switch (arg)
            {
                case "--help" or "-h":
                    return new CommandLineResult.Help(HelpText);
                case "--version":
                    return new CommandLineResult.Version();
            }

            string name = arg, value;
            int equals = arg.IndexOf('=', StringComparison.Ordinal);
            if (arg.StartsWith("--", StringComparison.Ordinal) && equals > 0)
            {
                name = arg[..equals];
                value = arg[(equals + 1)..];
            }
            else if (ValueFlags.Contains(arg))
            {
                if (i + 1 >= args.Count)
                {
                    errors.Add($"{arg}: missing value");
                    continue;
                }

                value = args[++i];
            }
            else
            {
                errors.Add(arg.StartsWith('-') ? $"unknown option '{arg}'" : $"unexpected argument '{arg}'");
                continue;
            }

            if (!ValueFlags.Contains(name))
            {
                errors.Add($"unknown option '{name}'");
                continue;
            }

            flags.Add((name, value));
        }

        if (errors.Count > 0)
        {
            return new CommandLineResult.Invalid(errors);
        }

        if (flags.Count == 0)
        {
            return new CommandLineResult.Invalid(["nothing to do: give --listen ADDR:PORT or --config FILE (see --help)"]);
        }

        if (flags.Any(f => f.Name == "--check-config"))
        {
            return flags.Count == 1
                ? new CommandLineResult.CheckConfig(flags[0].Value)
                : new CommandLineResult.Invalid(["--check-config takes no other options"]);
        }

        if (flags.Any(f => f.Name == "--config"))
        {
            return FromConfigFile(flags);
        }

        return FromFlags(flags);
    }

    private static CommandLineResult ParsePasswd(IReadOnlyList<string> args)
    {
        string? usersFile = null, user = null;
        var errors = new List<string>();
        for (int i = 1; i < args.Count; i++)
        {
            if (args[i] == "--users")
            {
                if (i + 1 < args.Count)
                {
                    usersFile = args[++i];
                }
                else
                {
                    errors.Add("--users: missing value");
                }
            }
            else if (args[i].StartsWith("--users=", StringComparison.Ordinal))
            {
                usersFile = args[i]["--users=".Length..];
            }
            else if (args[i].StartsWith('-'))
            {
                errors.Add($"passwd: unknown option '{args[i]}'");
            }
            else if (user is null)
            {
                user = args[i];
            }
            else
            {
                errors.Add($"passwd: unexpected argument '{args[i]}'");
            }
        }

        if (usersFile is null)
        {
            errors.Add("passwd: --users FILE is required");
        }

        if (user is null)
        {
            errors.Add("passwd: USER is required");
        }
        else if (Auth.UserStore.CheckUserName(user) is { } nameError)
        {
            errors.Add($"passwd: {nameError}");
        }

        return errors.Count > 0 ? new CommandLineResult.Invalid(errors) : new CommandLineResult.Passwd(usersFile!, user!);
    }

    private static CommandLineResult FromConfigFile(List<(string Name, string Value)> flags)
    {
        var errors = new List<string>();
        var others = flags.Where(f => f.Name is not ("--config" or "--debug")).Select(f => f.Name).Distinct().ToList();
        if (others.Count > 0)
        {
            errors.Add($"--config cannot be combined with {string.Join(", ", others)} (only --debug); put them in the file");
        }

        if (flags.Count(f => f.Name == "--config") > 1)
        {
            errors.Add("--config given more than once");
        }

        int? debug = null;
        foreach (var (_, value) in flags.Where(f => f.Name == "--debug"))
        {
            debug = ParseDebug(value, errors);
        }

        if (errors.Count > 0)
        {
            return new CommandLineResult.Invalid(errors);
        }

        var result = ConfigLoader.Load(flags.First(f => f.Name == "--config").Value);
        if (!result.Succeeded)
        {
            return new CommandLineResult.Invalid(result.Errors.Select(e => e.ToString()).ToList());
        }

        var options = debug is { } level ? result.Options! with { Debug = level } : result.Options!;
        return new CommandLineResult.Run(options, result.Warnings);
    }

    private static CommandLineResult FromFlags(List<(string Name, string Value)> flags)
    {
        var errors = new List<string>();
        var warnings = new List<string>();
        var options = new ProxyOptions();
        var listen = new List<ListenSpec>();
        var external = new List<ExternalSpec>();
        var allow = new List<AddressMatcher>();
        var logs = new List<LogTarget>();
        foreach (var (name, value) in flags)
        {
            switch (name)
            {
                case "--listen":
                    if (ParseListen(value, out var spec) is { } listenError)
                    {
                        errors.Add($"--listen: {listenError}");
                    }
                    else
                    {
                        listen.Add(spec);
                    }

                    break;
                case "--external":
                    if (AddressSyntax.TryParseIP(value, out var address))
                    {
                        external.Add(new ExternalSpec(address, null));
                    }
                    else if (AddressSyntax.IsInterfaceName(value))
                    {
                        external.Add(new ExternalSpec(null, value));
                    }
                    else
                    {
                        errors.Add($"--external: '{value}' is neither an address nor an interface name");
                    }

                    break;
                case "--allow":
                    if (AddressSyntax.ParseNetwork(value, out var network, out int prefix, out bool hostBits) is { } allowError)
                    {
                        errors.Add($"--allow: {allowError}");
                    }
                    else
                    {
                        if (hostBits)
                        {
                            warnings.Add($"--allow {value}: host bits set; matching {network}/{prefix}");
                        }

                        allow.Add(new AddressMatcher(network, prefix, null, null));
                    }

                    break;
                case "--users":
                    options = options with { UsersFile = value, SocksMethods = [MethodKind.Username] };
                    break;
                case "--port-range":
                    if (AddressSyntax.ParsePortRange(value, out var range) is { } rangeError)
                    {
                        errors.Add($"--port-range: {rangeError}");
                    }
                    else
                    {
                        options = options with { PortRange = range };
                    }

                    break;
                case "--negotiate-timeout":
                    options = options with { NegotiateTimeout = ParseSeconds(name, value, errors) ?? options.NegotiateTimeout };
                    break;
                case "--io-timeout":
                    options = options with { IoTimeout = ParseSeconds(name, value, errors) ?? options.IoTimeout };
                    break;
                case "--connect-timeout":
                    options = options with { ConnectTimeout = ParseSeconds(name, value, errors) ?? options.ConnectTimeout };
                    break;
                case "--max-clients":
                    options = options with { MaxClients = ParseCount(name, value, errors) ?? options.MaxClients };
                    break;
                case "--max-per-client":
                    options = options with { MaxClientsPerAddress = ParseCount(name, value, errors) ?? options.MaxClientsPerAddress };
                    break;
                case "--max-udp":
                    options = options with { MaxUdpAssociations = ParseCount(name, value, errors) ?? options.MaxUdpAssociations };
                    break;
                case "--log":
                    if (AddressSyntax.ParseLogTarget(value, out var target) is { } logError)
                    {
                        errors.Add($"--log: {logError}");
                    }
                    else if (!logs.Contains(target))
                    {
                        logs.Add(target);
                    }

                    break;
                case "--debug":
                    options = options with { Debug = ParseDebug(value, errors) ?? options.Debug };
                    break;
                case "--metrics":
                    if (ParseListen(value, out var metrics) is { } metricsError)
                    {
                        errors.Add($"--metrics: {metricsError}");
                    }
                    else if (metrics.Address is null)
                    {
                        errors.Add($"--metrics: '{value}': give an address, not an interface name");
                    }
                    else
                    {
                        options = options with { Metrics = new IPEndPoint(metrics.Address, metrics.Port) };
                    }

                    break;
                case "--workers":
                    options = options with { Workers = ParseCount(name, value, errors) ?? options.Workers };
                    break;
            }
        }

        if (allow.Count == 0)
        {
            warnings.Add("no --allow given: clients from any address are served");
            allow.Add(new AddressMatcher(IPAddress.Any, 0, null, null));
            allow.Add(new AddressMatcher(IPAddress.IPv6Any, 0, null, null));
        }

        options = options with
        {
            Internal = listen,
            External = external,
            LogOutput = logs.Count > 0 ? logs : options.LogOutput,
            ClientRules = allow.Select((from, i) => new ClientRule(RuleAction.Pass, from, AddressMatcher.Any, FlagRuleLog, new RuleSource(i + 1, 0))).ToList(),
            // Each --allow passes its clients' requests, and the replies addressed to them
            // (Dante: for bindreply/udpreply, from: is the replying host and to: the client).
            SocksRules = allow.Select((from, i) => new SocksRule(
                    RuleAction.Pass, from, AddressMatcher.Any, RequestCommands, RuleProtocol.Any, null, null, null, FlagRuleLog, new RuleSource(i + 1, 0)))
                .Concat(allow.Select((to, i) => new SocksRule(
                    RuleAction.Pass, AddressMatcher.Any, to, ReplyCommands, RuleProtocol.Any, null, null, null, FlagRuleLog, new RuleSource(allow.Count + i + 1, 0))))
                .ToList(),
            Source = "flags",
        };

        if (errors.Count == 0)
        {
            var validation = ConfigValidator.Validate(options);
            errors.AddRange(validation.Errors.Select(p => p.Message));
            warnings.AddRange(validation.Warnings);
        }

        return errors.Count > 0 ? new CommandLineResult.Invalid(errors) : new CommandLineResult.Run(options, warnings);
    }

    /// <summary><c>1.2.3.4:1080</c>, <c>[::1]:1080</c>, or <c>IFNAME:PORT</c>; the port is required.</summary>
    internal static string? ParseListen(string text, out ListenSpec spec)
    {
        spec = new ListenSpec(null, null, 0);
        string host, portText;
        if (text.StartsWith('['))
        {
            int close = text.IndexOf("]:", StringComparison.Ordinal);
            if (close < 0)
            {
                return $"'{text}': expected [IPv6]:PORT";
            }

            host = text[1..close];
            portText = text[(close + 2)..];
            if (!host.Contains(':', StringComparison.Ordinal))
            {
                return $"'{text}': brackets are for IPv6 addresses";
            }
        }
        else
        {
            int colon = text.LastIndexOf(':');
            if (colon <= 0 || text.IndexOf(':', StringComparison.Ordinal) != colon)
            {
                return $"'{text}': expected ADDR:PORT (write IPv6 as [ADDR]:PORT)";
            }

            host = text[..colon];
            portText = text[(colon + 1)..];
        }

        if (AddressSyntax.ParsePort(portText, allowZero: false, out ushort port) is { } portError)
        {
            return $"'{text}': {portError}";
        }

        if (AddressSyntax.TryParseIP(host, out var address))
        {
            spec = new ListenSpec(address, null, port);
            return null;
        }

        if (AddressSyntax.IsInterfaceName(host))
        {
            spec = new ListenSpec(null, host, port);
            return null;
        }

        return $"'{text}': '{host}' is neither an address nor an interface name";
    }

    private static TimeSpan? ParseSeconds(string name, string value, List<string> errors)
    {
        if (AddressSyntax.ParseSeconds(value, out var duration) is { } error)
        {
            errors.Add($"{name}: {error}");
            return null;
        }

        return duration;
    }

    private static int? ParseCount(string name, string value, List<string> errors)
    {
        if (!AddressSyntax.IsDigits(value) || !int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int count))
        {
            errors.Add($"{name}: bad number '{value}'");
            return null;
        }

        return count;
    }

    private static int? ParseDebug(string value, List<string> errors)
    {
        if (value is "0" or "1" or "2")
        {
            return value[0] - '0';
        }

        errors.Add($"--debug: bad level '{value}': expected 0, 1 or 2");
        return null;
    }
}
