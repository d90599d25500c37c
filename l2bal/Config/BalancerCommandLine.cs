using System.CommandLine;
using System.Net;
using L2Balance.Balancer.Control;
using L2Balance.Common.CommandLine;

namespace L2Balance.Balancer.Config;

/// <summary>What the command line asks for; a closed set of records.</summary>
internal abstract record BalancerCommand
{
    private BalancerCommand()
    {
    }

    /// <summary><c>l2bal run</c>.</summary>
    public sealed record Run(BalancerOptions Options) : BalancerCommand;

    /// <summary><c>l2bal check-config</c>: the options <c>run</c> would use, or every error in them.</summary>
    public sealed record CheckConfig(BalancerOptions? Options, IReadOnlyList<string> Errors) : BalancerCommand;

    /// <summary>A request to a running daemon over its control socket (status, owner, drain, undrain).</summary>
    public sealed record Control(string Request, string? ControlPath) : BalancerCommand;

    /// <summary><c>l2bal slice</c>: print one node's port slice, or every node's without <see cref="NodeId"/>.</summary>
    public sealed record Slice(int? NodeId, int NodeCount) : BalancerCommand;

    /// <summary><c>l2bal genkey</c>: print a fresh random key, or write it to <see cref="OutputFile"/> in one safe step (replacing a file only with <see cref="Force"/>).</summary>
    public sealed record GenKey(string? OutputFile = null, bool Force = false) : BalancerCommand;

    /// <summary><c>--help</c> or <c>--version</c>: print <see cref="Text"/> and exit 0.</summary>
    public sealed record Output(string Text) : BalancerCommand;

    /// <summary>The command line or the configuration is wrong: every message, and how to exit.</summary>
    public sealed record Invalid(IReadOnlyList<string> Messages) : BalancerCommand
    {
        /// <summary>64 for a wrong command line, 78 when a configuration file is involved.</summary>
        public int ExitCode { get; init; } = ExitCodes.Usage;

        /// <summary>The help to read: <c>l2bal run --help</c>.</summary>
        public string SeeHelp { get; init; } = "l2bal --help";
    }
}

/// <summary>
/// l2bal's command line, on System.CommandLine: the commands, <c>--help</c> on each, <c>--version</c>;
/// the settings of <c>run</c> and <c>check-config</c> come from flags, a <c>--config</c> file or
/// both (flags win) and go through one conversion (<see cref="BalancerOptionsBuilder"/>).
/// </summary>
internal static class BalancerCommandLine
{
    public const string Program = "l2bal";

    private const string RunDescription = """
        Run the daemon. Settings come from flags, from a configuration file (--config FILE: one 'NAME VALUE' per line, NAME as the flag without its dashes, # starts a comment), or both: a flag overrides the file's value.
        """;

    private const string CheckDescription = """
        Check settings as 'run' would read them: from FILE (or --config FILE) and any flags. Prints 'configuration OK' and exits 0, or prints every error (FILE:LINE:COLUMN: message for the file's) and exits 78.
        """;

    public static BalancerCommand Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var tree = new CommandTree();
        return ProgramCommandLine.Parse(tree.Root, args.Count == 0 ? ["--help"] : args) switch
        {
            ParsedCommandLine.Text text => new BalancerCommand.Output(text.Output),
            ParsedCommandLine.Errors errors => new BalancerCommand.Invalid(errors.Messages) { SeeHelp = errors.SeeHelp },
            ParsedCommandLine.Parsed parsed => tree.Read(parsed.Result),
            _ => throw new InvalidOperationException("unknown parse outcome"),
        };
    }

    /// <summary>The commands and their flags, made anew for each parse so that parses share no state.</summary>
    private sealed class CommandTree
    {
        private readonly SettingsCommand _run = new("run", RunDescription);
        private readonly SettingsCommand _check = new("check-config", CheckDescription);
        private readonly Argument<string> _checkFile = new("FILE") { Description = "The configuration file", Arity = ArgumentArity.ZeroOrOne };
        private readonly Command _status = new("status", "State of the daemon on this node: peers, buckets, counters");
        private readonly Option<bool> _json = ProgramCommandLine.Switch("--json", "As JSON");
        private readonly Command _owner = new("owner", "Bucket of a client address and the node that owns it now");
        private readonly Argument<string> _ownerAddress = new("ADDR") { Description = "A client's IPv4 or IPv6 address, e.g. 198.18.64.10 or fdc6:1200:10::65" };
        private readonly Option<string> _ownerPort = ProgramCommandLine.Flag("--port", "P/PORT", "The service the client reaches, e.g. udp/53: its affinity decides the bucket; without it, the source address's");
        private readonly Option<string> _ownerSourcePort = ProgramCommandLine.Flag("--source-port", "N", "The client's source port, needed for a port of affinity none");
        private readonly Command _drain = new("drain", "Stop taking new flows on this node; keep established ones");
        private readonly Option<bool> _drainMigrate = ProgramCommandLine.Switch(
            "--migrate", "Then move established sessions to their buckets' new owners (needs --migrate on run and l2proxy's migration socket)");
        private readonly Command _undrain = new("undrain", "Take new flows again after 'drain'");
        private readonly Command _migrate = new("migrate", "Move established sessions whose bucket this node no longer owns to its owner (after a hand-back)");
        private readonly Command _slice = new("slice", "A node's port slice, LO-HI (for l2proxy --port-range); without --node-id, every node's, one line each");
        private readonly Option<string> _sliceNodeId = SettingFlag(BalancerSettings.NodeId);
        private readonly Option<string> _sliceNodeCount = SettingFlag(BalancerSettings.NodeCount);
        private readonly Command _genkey = new("genkey", "Print a random 32-byte key (hex) for --key-file, or write it to a file with --output");
        private readonly Option<string> _genkeyOutput = ProgramCommandLine.Flag(
            "--output", "FILE", "Write the key to FILE in one step (never half-written): owner root, group l2bal and mode 0640 when that group exists, else mode 0600");
        private readonly Option<bool> _genkeyForce = ProgramCommandLine.Switch("--force", "With --output: replace FILE if it exists");
        private readonly Dictionary<Command, Option<string>> _control = [];

        public CommandTree()
        {
            _check.Command.Add(_checkFile);
            _status.Add(_json);
            _drain.Add(_drainMigrate);
            _owner.Add(_ownerAddress);
            _owner.Add(_ownerPort);
            _owner.Add(_ownerSourcePort);
            _sliceNodeCount.Required = true;
            _slice.Add(_sliceNodeId);
            _slice.Add(_sliceNodeCount);
            _genkey.Add(_genkeyOutput);
            _genkey.Add(_genkeyForce);
            foreach (var command in new[] { _status, _owner, _drain, _undrain, _migrate })
            {
                var control = SettingFlag(BalancerSettings.Control);
                command.Add(control);
                _control[command] = control;
            }
            Root = ProgramCommandLine.CreateRoot(Program, "l2bal: layer-2 shared-address load balancer", typeof(BalancerCommandLine).Assembly);
            foreach (var command in new[] { _run.Command, _check.Command, _status, _owner, _drain, _undrain, _migrate, _slice, _genkey })
            {
                Root.Add(command);
            }
        }

        public Command Root { get; }

        public BalancerCommand Read(ParseResult result)
        {
            var command = result.CommandResult.Command;
            if (command == _run.Command)
            {
                var configFile = result.Given(_run.Config);
                var options = _run.Read(result, configFile, out var errors);
                return options is not null
                    ? new BalancerCommand.Run(options)
                    : new BalancerCommand.Invalid(errors) { ExitCode = configFile is null ? ExitCodes.Usage : ExitCodes.Config, SeeHelp = "l2bal run --help" };
            }
            if (command == _check.Command)
            {
                var (argument, flag) = (result.GetValue(_checkFile), result.Given(_check.Config));
                if (argument is not null && flag is not null)
                {
                    return new BalancerCommand.Invalid([$"check-config: give the file once, as FILE or as --config FILE (got '{argument}' and '{flag}')"])
                    {
                        SeeHelp = "l2bal check-config --help",
                    };
                }
                var options = _check.Read(result, argument ?? flag, out var errors);
                return new BalancerCommand.CheckConfig(options, errors);
            }
            if (command == _slice)
            {
                return ReadSlice(result);
            }
            if (command == _genkey)
            {
                var output = result.Given(_genkeyOutput);
                var force = result.GetValue(_genkeyForce);
                return force && output is null
                    ? new BalancerCommand.Invalid(["genkey: --force replaces the file of --output; give --output FILE"]) { SeeHelp = "l2bal genkey --help" }
                    : new BalancerCommand.GenKey(output, force);
            }
            var controlPath = result.Given(_control[command]);
            if (command == _owner)
            {
                return ReadOwner(result, controlPath);
            }
            var request = command == _status && result.GetValue(_json) ? "status --json"
                : command == _drain && result.GetValue(_drainMigrate) ? "drain --migrate" : command.Name;
            return new BalancerCommand.Control(request, controlPath);
        }

        private BalancerCommand ReadOwner(ParseResult result, string? controlPath)
        {
            var text = result.GetValue(_ownerAddress) ?? "";
            var (portText, sourceText) = (result.Given(_ownerPort), result.Given(_ownerSourcePort));
            var errors = new List<string>();
            if (!IPAddress.TryParse(text, out var address) || !ControlCommand.IsClientAddress(address))
            {
                errors.Add($"owner: '{text}' is not an IPv4 or IPv6 address (without a scope; not IPv4-mapped)");
            }
            var port = default(ServiceSpec);
            if (portText is not null && !ControlCommand.TryPort(portText, out port))
            {
                errors.Add($"owner: --port '{portText}': use tcp/PORT or udp/PORT");
            }
            var sourcePort = 0;
            if (sourceText is not null && !ControlCommand.TrySourcePort(sourceText, out sourcePort))
            {
                errors.Add($"owner: --source-port '{sourceText}': give a port, 0 to 65535");
            }
            else if (sourceText is not null && portText is null)
            {
                errors.Add("owner: --source-port needs --port (the service whose affinity uses it)");
            }
            return errors.Count > 0
                ? new BalancerCommand.Invalid(errors) { SeeHelp = "l2bal owner --help" }
                : new BalancerCommand.Control(new ControlCommand(
                    ControlVerb.Owner, Address: address, Port: portText is null ? null : port, SourcePort: sourceText is null ? null : sourcePort).ToString(), controlPath);
        }

        private BalancerCommand ReadSlice(ParseResult result)
        {
            var nodeIdText = result.Given(_sliceNodeId);
            var nodeId = new SettingValue(BalancerSettings.NodeId, nodeIdText ?? "1");
            var nodeCount = new SettingValue(BalancerSettings.NodeCount, result.Given(_sliceNodeCount)!);
            var errors = new List<SettingError>();
            var values = new List<int>();
            foreach (var value in new[] { nodeId, nodeCount })
            {
                if (!WholeNumberSyntax.TryParse(value.Text, 1, Cluster.MembershipView.MaxNodes, out var number, out var problem))
                {
                    errors.Add(value.Problem(problem));
                }
                values.Add(number);
            }
            if (errors.Count == 0 && values[0] > values[1])
            {
                errors.Add(nodeId.Relation("is larger than", nodeCount));
            }
            return errors.Count > 0
                ? new BalancerCommand.Invalid(SettingError.InOrder(errors)) { SeeHelp = "l2bal slice --help" }
                : new BalancerCommand.Slice(nodeIdText is null ? null : values[0], values[1]);
        }
    }

    /// <summary><c>run</c> or <c>check-config</c>: a flag for each setting, and <c>--config FILE</c>.</summary>
    private sealed class SettingsCommand
    {
        private readonly Dictionary<Setting, Option> _flags = [];

        public SettingsCommand(string name, string description)
        {
            Command = new Command(name, description) { Config };
            foreach (var setting in BalancerSettings.All)
            {
                Option flag = setting.Repeatable
                    ? ProgramCommandLine.RepeatableFlag(setting.Flag, setting.HelpName, setting.Description)
                    : SettingFlag(setting);
                Command.Add(flag);
                _flags[setting] = flag;
            }
        }

        public Command Command { get; }

        public Option<string> Config { get; } = ProgramCommandLine.Flag("--config", "FILE", "Read settings from FILE; flags given with it override the file's values");

        /// <summary>The options from the file and the flags (flags win), or null and every error.</summary>
        public BalancerOptions? Read(ParseResult result, string? configFile, out IReadOnlyList<string> errors)
        {
            var fromFlags = new List<SettingValue>();
            foreach (var (setting, flag) in _flags)
            {
                var given = flag is Option<string[]> repeatable ? result.GivenAll(repeatable) : result.Given((Option<string>)flag) is { } one ? [one] : [];
                fromFlags.AddRange(given.Select(text => new SettingValue(setting, text)));
            }
            var fileErrors = new List<SettingError>();
            var fromFile = configFile is null ? [] : BalancerConfigFile.Read(configFile, fileErrors);
            if (fromFile is null)
            {
                errors = SettingError.InOrder(fileErrors);
                return null;
            }
            var options = BalancerOptionsBuilder.Build(BalancerOptionsBuilder.Merge(fromFile, fromFlags), configFile, out var buildErrors);
            errors = SettingError.InOrder([.. fileErrors, .. buildErrors]);
            return errors.Count == 0 ? options : null;
        }
    }

    private static Option<string> SettingFlag(Setting setting) =>
        ProgramCommandLine.Flag(setting.Flag, setting.HelpName, setting.Description, setting.DefaultText);
}
