using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Reflection;

namespace L2Balance.Common.CommandLine;

/// <summary>What a command line is before the program reads its values; a closed set of records.</summary>
public abstract record ParsedCommandLine
{
    private ParsedCommandLine()
    {
    }

    /// <summary><c>--help</c> or <c>--version</c>: print <see cref="Output"/> to standard output and exit 0.</summary>
    public sealed record Text(string Output) : ParsedCommandLine;

    /// <summary>A malformed command line (unknown flag, missing value, repeated flag...): every error, and the help to read.</summary>
    public sealed record Errors(IReadOnlyList<string> Messages, string SeeHelp) : ParsedCommandLine;

    /// <summary>Well formed: the program reads its values from <see cref="Result"/>.</summary>
    public sealed record Parsed(ParseResult Result) : ParsedCommandLine;
}

/// <summary>
/// The System.CommandLine conventions both programs share: <c>--help</c> on every command,
/// <c>--version</c> on the root, flags whose values the program converts itself (so that l2bal's
/// configuration file goes through the same conversion), and parsing without invoking anything,
/// so that a command line is a value the tests can inspect.
/// </summary>
public static class ProgramCommandLine
{
    /// <summary>Help is wrapped at a fixed width, so it reads the same in a terminal, a pipe and a test.</summary>
    private const int HelpWidth = 100;

    /// <summary>No response files (<c>@FILE</c> would swallow a user name) and no bundling of short flags.</summary>
    private static readonly ParserConfiguration Configuration = new() { ResponseFileTokenReplacer = null, EnablePosixBundling = false };

    /// <summary>
    /// The root command of <paramref name="program"/>: <c>--help</c> (inherited by every
    /// subcommand) and <c>--version</c>, which prints the program's name and the repository's version.
    /// </summary>
    public static Command CreateRoot(string program, string description, Assembly assembly)
    {
        ArgumentNullException.ThrowIfNull(assembly);
        return new Command(program, description)
        {
            new HelpOption { Action = new HelpAction { MaxWidth = HelpWidth } },
            new VersionOption { Action = new PrintVersion($"{program} {VersionOf(assembly)}") },
        };
    }

    /// <summary>The version the build stamped on <paramref name="assembly"/> (Directory.Build.props, plus the commit).</summary>
    public static string VersionOf(Assembly assembly)
    {
        ArgumentNullException.ThrowIfNull(assembly);
        return assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? assembly.GetName().Version?.ToString()
            ?? "unknown";
    }

    /// <summary>
    /// A flag taking one value, given at most once. <paramref name="defaultText"/> is what help shows
    /// as the default; the program keeps the default itself (see <see cref="Given"/>).
    /// </summary>
    public static Option<string> Flag(string name, string helpName, string description, string? defaultText = null)
    {
        var option = new Option<string>(name) { HelpName = helpName, Description = description };
        if (defaultText is not null)
        {
            option.DefaultValueFactory = _ => defaultText;
        }
        return option;
    }

    /// <summary>A flag that may be given several times, one value each time.</summary>
    public static Option<string[]> RepeatableFlag(string name, string helpName, string description)
    {
        var option = new Option<string[]>(name) { HelpName = helpName, Description = description, Arity = ArgumentArity.OneOrMore };
        // The arity counts values over all occurrences: a last "--name" without one would pass unnoticed.
        option.Validators.Add(result =>
        {
            if (result.IdentifierTokenCount > result.Tokens.Count)
            {
                result.AddError($"Required argument missing for option: '{name}'.");
            }
        });
        return option;
    }

    /// <summary>A flag that takes no value (<c>--json</c>).</summary>
    public static Option<bool> Switch(string name, string description) => new(name) { Description = description, Arity = ArgumentArity.Zero };

    /// <summary>Parses <paramref name="args"/> against <paramref name="root"/> and says what it is; invokes no command.</summary>
    public static ParsedCommandLine Parse(Command root, IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(root);
        var result = root.Parse(args, Configuration);
        // Help wins over errors (HelpAction clears them); --version with anything else is an error.
        if (result.Action is HelpAction || (result.Action is PrintVersion && result.Errors.Count == 0))
        {
            using var output = new StringWriter(CultureInfo.InvariantCulture);
            result.Invoke(new InvocationConfiguration { Output = output, Error = output });
            return new ParsedCommandLine.Text(output.ToString());
        }
        if (result.Errors.Count > 0)
        {
            var path = new List<string>();
            for (SymbolResult? at = result.CommandResult; at is not null; at = at.Parent)
            {
                if (at is CommandResult command)
                {
                    path.Insert(0, command.Command.Name);
                }
            }
            return new ParsedCommandLine.Errors([.. result.Errors.Select(e => e.Message).Distinct()], $"{string.Join(' ', path)} --help");
        }
        return new ParsedCommandLine.Parsed(result);
    }

    /// <summary>The value given on the command line, or null when the flag was not given (its default is the program's).</summary>
    public static string? Given(this ParseResult result, Option<string> option)
    {
        ArgumentNullException.ThrowIfNull(result);
        return result.GetResult(option) is { Implicit: false } given ? given.GetValueOrDefault<string>() : null;
    }

    /// <summary>Every value of a repeatable flag, in command-line order; empty when it was not given.</summary>
    public static IReadOnlyList<string> GivenAll(this ParseResult result, Option<string[]> option)
    {
        ArgumentNullException.ThrowIfNull(result);
        return result.GetResult(option) is { Implicit: false } given ? given.GetValueOrDefault<string[]>() ?? [] : [];
    }

    /// <summary>Prints usage errors the way both programs do (<c>PROGRAM: message</c>, then where to read help) and returns the exit code.</summary>
    public static int ReportUsage(TextWriter error, string program, IReadOnlyList<string> messages, string seeHelp)
    {
        ArgumentNullException.ThrowIfNull(error);
        ArgumentNullException.ThrowIfNull(messages);
        foreach (var message in messages)
        {
            error.WriteLine($"{program}: {message}");
        }
        error.WriteLine($"{program}: see '{seeHelp}'");
        return ExitCodes.Usage;
    }

    /// <summary>
    /// Prints a refused command line the way both programs do: a usage error as
    /// <see cref="ReportUsage"/> does, any other (a configuration error) as its messages alone.
    /// Returns <paramref name="exitCode"/>.
    /// </summary>
    public static int Report(TextWriter error, string program, IReadOnlyList<string> messages, int exitCode, string seeHelp)
    {
        if (exitCode == ExitCodes.Usage)
        {
            return ReportUsage(error, program, messages, seeHelp);
        }
        ArgumentNullException.ThrowIfNull(error);
        ArgumentNullException.ThrowIfNull(messages);
        foreach (var message in messages)
        {
            error.WriteLine($"{program}: {message}");
        }
        return exitCode;
    }

    /// <summary><c>--version</c>: the program's name and version on one line.</summary>
    private sealed class PrintVersion(string text) : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            ArgumentNullException.ThrowIfNull(parseResult);
            parseResult.InvocationConfiguration.Output.WriteLine(text);
            return ExitCodes.Ok;
        }
    }
}
