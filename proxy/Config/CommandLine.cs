using System.CommandLine;
using System.Globalization;
using System.Net;
using L2Balance.Common.CommandLine;
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

    /// <summary><c>--help</c>/<c>-h</c> (on the program or on <c>passwd</c>) or <c>--version</c>: print <see cref="Text"/> and exit 0.</summary>
    public sealed record Output(string Text) : CommandLineResult;

    /// <summary>The command line is wrong; every problem found. (Named Invalid, not Error: CA1716, Error is a VB keyword.)</summary>
    public sealed record Invalid(IReadOnlyList<string> Messages) : CommandLineResult
    {
        /// <summary>64 for a wrong command line, 78 for a wrong <c>--config</c> file.</summary>
        public int ExitCode { get; init; } = ExitCodes.Usage;

        /// <summary>The help to read.</summary>
        public string SeeHelp { get; init; } = "l2proxy --help";
    }
}

/// <summary>
/// The flags front end, on System.CommandLine: builds the same <see cref="ProxyOptions"/> as
/// sockd.conf does and runs the same <see cref="ConfigValidator"/>. Durations take their unit
/// (<c>30s</c>); sockd.conf keeps Dante's bare seconds.
/// </summary>
public static class CommandLine
{
    public const string Program = "l2proxy";

    /// <summary>Rules made from flags log what Dante's usual <c>log: connect disconnect error</c> logs.</summary>
    private const RuleLog FlagRuleLog = RuleLog.Connect | RuleLog.Disconnect | RuleLog.Error;

    private const string Description = """
        l2proxy: a SOCKS4/4a/5 proxy (CONNECT, BIND, UDP ASSOCIATE, RFC 1929 users).
        Configured by flags (at least --listen), or by a Dante sockd.conf (--config FILE, with --debug N at most).
        """;

    /// <summary>What to add when the command line names no client at all.</summary>
    internal const string NoClientPolicy =
        "no client policy: l2proxy serves nobody by default; add --allow CIDR (the client network, e.g. --allow 198.18.64.0/24), "
        + "--users FILE (every client logs in), or --config FILE with client and socks rules";

    private static readonly HashSet<RuleCommand> RequestCommands = [RuleCommand.Connect, RuleCommand.Bind, RuleCommand.UdpAssociate];

    private static readonly HashSet<RuleCommand> ReplyCommands = [RuleCommand.BindReply, RuleCommand.UdpReply];

    public static CommandLineResult Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Count == 0)
        {
            return new CommandLineResult.Invalid(["nothing to do: give --listen ADDR:PORT or --config FILE (see --help)"]);
        }
        var flags = new Flags();
        return ProgramCommandLine.Parse(flags.Root, args) switch
        {
            ParsedCommandLine.Text text => new CommandLineResult.Output(text.Output),
            ParsedCommandLine.Errors errors => new CommandLineResult.Invalid(errors.Messages) { SeeHelp = errors.SeeHelp },
            ParsedCommandLine.Parsed parsed => parsed.Result.CommandResult.Command == flags.Passwd ? flags.ReadPasswd(parsed.Result) : flags.Read(parsed.Result),
            _ => throw new InvalidOperationException("unknown parse outcome"),
        };
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

    /// <summary>The flags and the <c>passwd</c> command, made anew for each parse; defaults shown by help come from <see cref="ProxyOptions.Defaults"/>.</summary>
    private sealed class Flags
    {
        private static readonly ProxyOptions Defaults = ProxyOptions.Defaults;

        private readonly Option<string[]> _listen = ProgramCommandLine.RepeatableFlag(
            "--listen", "ADDR:PORT", "Accept SOCKS clients here: 1.2.3.4:1080, [::1]:1080 or IFNAME:1080; repeatable");
        private readonly Option<string[]> _external = ProgramCommandLine.RepeatableFlag(
            "--external", "ADDR|IFNAME", "Address for outgoing traffic; repeatable; without it, the kernel chooses");
        private readonly Option<string[]> _allow = ProgramCommandLine.RepeatableFlag(
            "--allow", "CIDR", "Serve clients from this network; repeatable; without it (and without --users), l2proxy refuses to start");
        private readonly Option<string> _users = ProgramCommandLine.Flag("--users", "FILE", "Require a username and password from this users file (see 'passwd'); without --allow, from any address");
        private readonly Option<string> _gssapiKeytab = ProgramCommandLine.Flag(
            "--gssapi-keytab", "FILE", "Require GSS-API (Kerberos, RFC 1961) with the service key from this keytab (mode 600); without --allow, from any address");
        private readonly Option<string> _gssapiServiceName = ProgramCommandLine.Flag(
            "--gssapi-servicename", "NAME", "The service principal clients get tickets for (svc/host or svc@host); without it, any key of the keytab");
        private readonly Option<string> _portRange = ProgramCommandLine.Flag(
            "--port-range", "LO-HI", "Ports for UDP relays and BIND sockets (l2bal slice), and for outgoing sockets when the external address is the VIP (single-IP mode); without it, the kernel's ephemeral range");
        private readonly Option<string> _negotiateTimeout = ProgramCommandLine.Flag(
            "--negotiate-timeout", "DURATION", "A client must finish the SOCKS handshake within this", DurationSyntax.Format(Defaults.NegotiateTimeout));
        private readonly Option<string> _ioTimeout = ProgramCommandLine.Flag(
            "--io-timeout", "DURATION", "Close a session idle this long; 0s: never", DurationSyntax.Format(Defaults.IoTimeout));
        private readonly Option<string> _connectTimeout = ProgramCommandLine.Flag(
            "--connect-timeout", "DURATION", "Limit for the outgoing connect", DurationSyntax.Format(Defaults.ConnectTimeout));
        private readonly Option<string> _maxClients = ProgramCommandLine.Flag("--max-clients", "N", "Concurrent sessions", Whole(Defaults.MaxClients));
        private readonly Option<string> _maxPerClient = ProgramCommandLine.Flag(
            "--max-per-client", "N", "Concurrent sessions per client address", Whole(Defaults.MaxClientsPerAddress));
        private readonly Option<string> _maxUdp = ProgramCommandLine.Flag("--max-udp", "N", "Concurrent UDP associations", Whole(Defaults.MaxUdpAssociations));
        private readonly Option<string[]> _log = ProgramCommandLine.RepeatableFlag(
            "--log", "TARGET", $"stderr, stdout, syslog[/FACILITY] or an absolute path; repeatable; without it, {string.Join(", ", Defaults.LogOutput)}");
        private readonly Option<string> _debug = ProgramCommandLine.Flag("--debug", "N", "Log detail: 0, 1 or 2", Whole(Defaults.Debug));
        private readonly Option<string> _metrics = ProgramCommandLine.Flag("--metrics", "ADDR:PORT", "Serve Prometheus metrics on http://ADDR:PORT/metrics; without it, none");
        private readonly Option<string> _workers = ProgramCommandLine.Flag(
            "--workers", "N", $"Worker processes under a supervisor, 1 to {ProxyOptions.MaxWorkers}; 1: no supervisor", Whole(Defaults.Workers));
        private readonly Option<string> _migrateControl = ProgramCommandLine.Flag(
            "--migrate-control", "@NAME|PATH", "The migration control socket l2bal moves sessions through (issue 19); without it, @l2proxy-migrate (abstract, per network namespace)");
        private readonly Option<string> _config = ProgramCommandLine.Flag("--config", "FILE", "Read a Dante sockd.conf; only --debug may be given with it");
        private readonly Option<string> _checkConfig = ProgramCommandLine.Flag(
            "--check-config", "FILE", "Check a sockd.conf: print 'configuration OK', or every error as FILE:LINE:COLUMN: message and exit 78");
        private readonly Option<string> _passwdUsers = ProgramCommandLine.Flag("--users", "FILE", "The users file (created if missing)");
        private readonly Argument<string> _passwdUser = new("USER") { Description = "The user whose password is set (read from the terminal or standard input)" };

        public Flags()
        {
            _passwdUsers.Required = true;
            Passwd = new Command("passwd", "Set a user's password in a users file (salted PBKDF2)") { _passwdUsers, _passwdUser };
            Root = ProgramCommandLine.CreateRoot(Program, Description, typeof(CommandLine).Assembly);
            foreach (var option in Settings)
            {
                Root.Add(option);
            }
            Root.Add(Passwd);
            // The root runs the proxy; the action is never invoked (Parse only reads), it makes a command line without a subcommand valid.
            Root.SetAction(_ => ExitCodes.Ok);
        }

        public Command Root { get; }

        public Command Passwd { get; }

        private Option[] Settings =>
        [
            _listen, _external, _allow, _users, _gssapiKeytab, _gssapiServiceName, _portRange, _negotiateTimeout, _ioTimeout, _connectTimeout, _maxClients, _maxPerClient, _maxUdp,
            _log, _debug, _metrics, _workers, _migrateControl, _config, _checkConfig,
        ];

        public CommandLineResult ReadPasswd(ParseResult result)
        {
            var user = result.GetValue(_passwdUser)!;
            return Auth.UserStore.CheckUserName(user) is { } nameError
                ? new CommandLineResult.Invalid([$"passwd: {nameError}"]) { SeeHelp = "l2proxy passwd --help" }
                : new CommandLineResult.Passwd(result.Given(_passwdUsers)!, user);
        }

        public CommandLineResult Read(ParseResult result)
        {
            var given = Settings.Where(o => result.GetResult(o) is { Implicit: false }).ToList();
            if (given.Count == 0)
            {
                return new CommandLineResult.Invalid(["nothing to do: give --listen ADDR:PORT or --config FILE (see --help)"]);
            }
            if (result.Given(_checkConfig) is { } check)
            {
                return given.Count == 1
                    ? new CommandLineResult.CheckConfig(check)
                    : new CommandLineResult.Invalid(["--check-config takes no other options"]);
            }
            if (result.Given(_config) is { } config)
            {
                var others = given.Where(o => o != _config && o != _debug).Select(o => o.Name).ToList();
                return others.Count > 0
                    ? new CommandLineResult.Invalid([$"--config cannot be combined with {string.Join(", ", others)} (only --debug); put them in the file"])
                    : FromConfigFile(config, result.Given(_debug));
            }
            return FromFlags(result);
        }

        private static CommandLineResult FromConfigFile(string path, string? debugText)
        {
            var errors = new List<string>();
            var debug = debugText is null ? (int?)null : Count("--debug", debugText, errors, max: 2);
            if (errors.Count > 0)
            {
                return new CommandLineResult.Invalid(errors);
            }
            var result = ConfigLoader.Load(path);
            if (!result.Succeeded)
            {
                return new CommandLineResult.Invalid([.. result.Errors.Select(e => e.ToString())]) { ExitCode = ExitCodes.Config };
            }
            var options = debug is { } level ? result.Options! with { Debug = level } : result.Options!;
            return new CommandLineResult.Run(options, result.Warnings);
        }

        private CommandLineResult FromFlags(ParseResult result)
        {
            var errors = new List<string>();
            var warnings = new List<string>();
            var options = new ProxyOptions();
            var listen = new List<ListenSpec>();
            foreach (var value in result.GivenAll(_listen))
            {
                if (ParseListen(value, out var spec) is { } listenError)
                {
                    errors.Add($"--listen: {listenError}");
                }
                else
                {
                    listen.Add(spec);
                }
            }
            var external = new List<ExternalSpec>();
            foreach (var value in result.GivenAll(_external))
            {
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
                    errors.Add($"--external '{value}': neither an address nor an interface name");
                }
            }
            var allow = new List<AddressMatcher>();
            foreach (var value in result.GivenAll(_allow))
            {
                if (AddressSyntax.ParseNetwork(value, out var network, out int prefix, out bool hostBits) is { } allowError)
                {
                    errors.Add($"--allow: {allowError}");
                    continue;
                }
                if (hostBits)
                {
                    warnings.Add($"--allow {value}: host bits set; matching {network}/{prefix}");
                }
                allow.Add(new AddressMatcher(network, prefix, null, null));
            }
            var logs = new List<LogTarget>();
            foreach (var value in result.GivenAll(_log))
            {
                if (AddressSyntax.ParseLogTarget(value, out var target) is { } logError)
                {
                    errors.Add($"--log: {logError}");
                }
                else if (!logs.Contains(target))
                {
                    logs.Add(target);
                }
            }
            if (result.Given(_users) is { } users)
            {
                options = options with { UsersFile = users, SocksMethods = [MethodKind.Username] };
            }
            string? gssapiKeytab = result.Given(_gssapiKeytab);
            string? gssapiService = result.Given(_gssapiServiceName);
            if (gssapiKeytab is not null && !Path.IsPathFullyQualified(gssapiKeytab))
            {
                errors.Add($"--gssapi-keytab '{gssapiKeytab}': give an absolute path");
            }
            if (gssapiKeytab is not null || gssapiService is not null)
            {
                // GSS-API first: a client offering both gets the ticket-based method.
                options = options with
                {
                    GssapiKeytab = gssapiKeytab,
                    GssapiServiceName = gssapiService,
                    SocksMethods = options.UsersFile is null ? [MethodKind.Gssapi] : [MethodKind.Gssapi, MethodKind.Username],
                };
            }
            if (result.Given(_portRange) is { } rangeText)
            {
                if (AddressSyntax.ParsePortRange(rangeText, out var range) is { } rangeError)
                {
                    errors.Add($"--port-range: {rangeError}");
                }
                else
                {
                    options = options with { PortRange = range };
                }
            }
            if (result.Given(_migrateControl) is { } migrateControl)
            {
                if (migrateControl.Length < 2 || (!migrateControl.StartsWith('@') && !Path.IsPathFullyQualified(migrateControl)))
                {
                    errors.Add($"--migrate-control '{migrateControl}': give @NAME (abstract) or an absolute path");
                }
                else
                {
                    options = options with { MigrateControl = migrateControl };
                }
            }
            if (result.Given(_metrics) is { } metricsText)
            {
                if (ParseListen(metricsText, out var metrics) is { } metricsError)
                {
                    errors.Add($"--metrics: {metricsError}");
                }
                else if (metrics.Address is null)
                {
                    errors.Add($"--metrics: '{metricsText}': give an address, not an interface name");
                }
                else
                {
                    options = options with { Metrics = new IPEndPoint(metrics.Address, metrics.Port) };
                }
            }
            options = options with
            {
                NegotiateTimeout = Duration(result, _negotiateTimeout, errors) ?? options.NegotiateTimeout,
                IoTimeout = Duration(result, _ioTimeout, errors) ?? options.IoTimeout,
                ConnectTimeout = Duration(result, _connectTimeout, errors) ?? options.ConnectTimeout,
                MaxClients = Count(result, _maxClients, errors) ?? options.MaxClients,
                MaxClientsPerAddress = Count(result, _maxPerClient, errors) ?? options.MaxClientsPerAddress,
                MaxUdpAssociations = Count(result, _maxUdp, errors) ?? options.MaxUdpAssociations,
                Debug = result.Given(_debug) is { } debug ? Count(_debug.Name, debug, errors, max: 2) ?? options.Debug : options.Debug,
                Workers = Count(result, _workers, errors) ?? options.Workers,
            };
            // Default deny, as Dante: no open proxy unless someone asked for one (issue 13); said once the rest is right.
            bool noClientPolicy = allow.Count == 0 && options.UsersFile is null && !options.SocksMethods.Contains(MethodKind.Gssapi);
            if (allow.Count == 0 && !noClientPolicy)
            {
                // --users or --gssapi-keytab alone: clients from anywhere, each must authenticate.
                allow.Add(new AddressMatcher(IPAddress.Any, 0, null, null));
                allow.Add(new AddressMatcher(IPAddress.IPv6Any, 0, null, null));
            }
            options = WithRules(options with
            {
                Internal = listen,
                External = external,
                LogOutput = logs.Count > 0 ? logs : options.LogOutput,
                Source = "flags",
            }, allow);
            if (errors.Count == 0)
            {
                var validation = ConfigValidator.Validate(options);
                errors.AddRange(validation.Errors.Select(p => Located(result, p)));
                warnings.AddRange(validation.Warnings);
                if (noClientPolicy && errors.Count == 0)
                {
                    errors.Add(NoClientPolicy);
                }
            }
            return errors.Count > 0 ? new CommandLineResult.Invalid(errors) : new CommandLineResult.Run(options, warnings);
        }

        /// <summary>A validator's problem, with the flag and value that caused it when a flag did.</summary>
        private string Located(ParseResult result, ConfigProblem problem)
        {
            Option<string>? flag = problem.Setting switch
            {
                nameof(ProxyOptions.NegotiateTimeout) => _negotiateTimeout,
                nameof(ProxyOptions.IoTimeout) => _ioTimeout,
                nameof(ProxyOptions.ConnectTimeout) => _connectTimeout,
                nameof(ProxyOptions.MaxClients) => _maxClients,
                nameof(ProxyOptions.MaxClientsPerAddress) => _maxPerClient,
                nameof(ProxyOptions.MaxUdpAssociations) => _maxUdp,
                nameof(ProxyOptions.Workers) => _workers,
                nameof(ProxyOptions.PortRange) => _portRange,
                _ => null,
            };
            return flag is not null && result.Given(flag) is { } value ? $"{flag.Name} '{value}': {problem.Message}" : problem.Message;
        }

        /// <summary>Each --allow passes its clients' requests, and the replies addressed to them (Dante: for bindreply/udpreply, from: is the replying host and to: the client).</summary>
        private static ProxyOptions WithRules(ProxyOptions options, List<AddressMatcher> allow) => options with
        {
            ClientRules = [.. allow.Select((from, i) => new ClientRule(RuleAction.Pass, from, AddressMatcher.Any, FlagRuleLog, new RuleSource(i + 1, 0)))],
            SocksRules =
            [
                .. allow.Select((from, i) => new SocksRule(
                    RuleAction.Pass, from, AddressMatcher.Any, RequestCommands, RuleProtocol.Any, null, null, null, FlagRuleLog, new RuleSource(i + 1, 0))),
                .. allow.Select((to, i) => new SocksRule(
                    RuleAction.Pass, AddressMatcher.Any, to, ReplyCommands, RuleProtocol.Any, null, null, null, FlagRuleLog, new RuleSource(allow.Count + i + 1, 0))),
            ],
        };

        private static TimeSpan? Duration(ParseResult result, Option<string> flag, List<string> errors)
        {
            if (result.Given(flag) is not { } text)
            {
                return null;
            }
            if (!DurationSyntax.TryParse(text, out var duration, out var problem))
            {
                errors.Add($"{flag.Name} '{text}': {problem}");
                return null;
            }
            return duration;
        }

        private static int? Count(ParseResult result, Option<string> flag, List<string> errors) =>
            result.Given(flag) is { } text ? Count(flag.Name, text, errors, int.MaxValue) : null;

        private static int? Count(string name, string text, List<string> errors, int max)
        {
            if (!WholeNumberSyntax.TryParse(text, 0, max, out var count, out var problem))
            {
                errors.Add($"{name} '{text}': {problem}");
                return null;
            }
            return count;
        }

        private static string Whole(int value) => value.ToString(CultureInfo.InvariantCulture);
    }
}
