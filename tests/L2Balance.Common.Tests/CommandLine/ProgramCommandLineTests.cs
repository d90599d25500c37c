using System.CommandLine;
using System.Reflection;
using L2Balance.Common.CommandLine;
using Xunit;

namespace L2Balance.Common.Tests.CommandLine;

public class ProgramCommandLineTests
{
    private readonly Option<string> _interval = ProgramCommandLine.Flag("--interval", "DURATION", "Time between ticks", "40ms");
    private readonly Option<string> _name = ProgramCommandLine.Flag("--name", "NAME", "A name");
    private readonly Option<string[]> _tag = ProgramCommandLine.RepeatableFlag("--tag", "TAG", "A tag; repeatable");
    private readonly Option<bool> _json = ProgramCommandLine.Switch("--json", "As JSON");

    private Command Root()
    {
        var root = ProgramCommandLine.CreateRoot("prog", "A test program", typeof(ProgramCommandLineTests).Assembly);
        root.Add(new Command("go", "Go somewhere") { _interval, _name, _tag, _json });
        return root;
    }

    private ParsedCommandLine Parse(params string[] args) => ProgramCommandLine.Parse(Root(), args);

    [Fact]
    public void Parse_WellFormed_GivesOnlyWhatWasGiven()
    {
        var result = Assert.IsType<ParsedCommandLine.Parsed>(Parse("go", "--name=n1", "--tag", "a", "--tag=b", "--json")).Result;
        Assert.Equal("n1", result.Given(_name));
        Assert.Null(result.Given(_interval));
        Assert.Equal(["a", "b"], result.GivenAll(_tag));
        Assert.True(result.GetValue(_json));
    }

    [Fact]
    public void Parse_FlagsNotGiven_AreNullOrEmpty()
    {
        var result = Assert.IsType<ParsedCommandLine.Parsed>(Parse("go")).Result;
        Assert.Null(result.Given(_name));
        Assert.Empty(result.GivenAll(_tag));
        Assert.False(result.GetValue(_json));
    }

    [Fact]
    public void Help_OfASubcommand_ShowsFlagsAndDefault()
    {
        var text = Assert.IsType<ParsedCommandLine.Text>(Parse("go", "--help")).Output;
        Assert.Contains("Usage:\n  prog go [options]", text.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.Contains("--interval <DURATION>  Time between ticks [default: 40ms]", text, StringComparison.Ordinal);
        Assert.Contains("--tag <TAG>", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Help_WithErrorsBesideIt_StillShowsHelp() =>
        Assert.IsType<ParsedCommandLine.Text>(Parse("go", "--bogus", "--help"));

    [Fact]
    public void Version_OfTheRoot_IsNameAndInformationalVersion()
    {
        var version = typeof(ProgramCommandLineTests).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;
        Assert.Equal($"prog {version}\n", Assert.IsType<ParsedCommandLine.Text>(Parse("--version")).Output.ReplaceLineEndings("\n"));
        Assert.Equal(version, ProgramCommandLine.VersionOf(typeof(ProgramCommandLineTests).Assembly));
    }

    [Fact]
    public void Version_WithOtherArguments_IsAnError() =>
        Assert.Contains("--version option cannot be combined with other arguments.", Assert.IsType<ParsedCommandLine.Errors>(Parse("--version", "go")).Messages);

    [Theory]
    [InlineData(new[] { "go", "--bogus" }, "Unrecognized command or argument '--bogus'.")]
    [InlineData(new[] { "go", "--name" }, "Required argument missing for option: '--name'.")]
    [InlineData(new[] { "go", "--name", "a", "--name", "b" }, "Option '--name' expects a single argument but 2 were provided.")]
    [InlineData(new[] { "go", "--tag", "a", "--tag" }, "Required argument missing for option: '--tag'.")]
    [InlineData(new[] { "go", "@args.txt" }, "Unrecognized command or argument '@args.txt'.")]
    public void Parse_Malformed_ListsTheErrorAndTheHelpToRead(string[] args, string message)
    {
        var errors = Assert.IsType<ParsedCommandLine.Errors>(Parse(args));
        Assert.Contains(message, errors.Messages);
        Assert.Equal("prog go --help", errors.SeeHelp);
    }

    [Fact]
    public void ReportUsage_Messages_ArePrefixedAndEndWithTheHelpToRead()
    {
        using var error = new StringWriter();
        Assert.Equal(ExitCodes.Usage, ProgramCommandLine.ReportUsage(error, "prog", ["one", "two"], "prog go --help"));
        Assert.Equal("prog: one\nprog: two\nprog: see 'prog go --help'\n", error.ToString().ReplaceLineEndings("\n"));
    }
}
