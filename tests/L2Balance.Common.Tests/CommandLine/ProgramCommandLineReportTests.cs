using L2Balance.Common.CommandLine;
using Xunit;

namespace L2Balance.Common.Tests.CommandLine;

public class ProgramCommandLineReportTests
{
    [Fact]
    public void Report_UsageError_PointsAtTheHelp()
    {
        var error = new StringWriter();
        Assert.Equal(ExitCodes.Usage, ProgramCommandLine.Report(error, "prog", ["bad flag"], ExitCodes.Usage, "prog --help"));
        Assert.Equal("prog: bad flag\nprog: see 'prog --help'\n", error.ToString());
    }

    [Fact]
    public void Report_ConfigurationError_KeepsItsExitCodeAndOmitsTheHelp()
    {
        var error = new StringWriter();
        Assert.Equal(ExitCodes.Config, ProgramCommandLine.Report(error, "prog", ["a.conf:3:1: unknown setting 'x'"], ExitCodes.Config, "prog --help"));
        Assert.Equal("prog: a.conf:3:1: unknown setting 'x'\n", error.ToString());
    }
}
