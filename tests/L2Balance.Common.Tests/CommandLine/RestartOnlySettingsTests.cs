using L2Balance.Common.CommandLine;
using Xunit;

namespace L2Balance.Common.Tests.CommandLine;

public class RestartOnlySettingsTests
{
    [Fact]
    public void Changed_SomeValuesAndListsDiffer_NamesExactlyThoseInOrder()
    {
        var restart = new RestartOnlySettings()
            .Check("same", 1, 1)
            .Check("value", "a", "b")
            .CheckAll("same list", new[] { 1, 2 }, [1, 2])
            .CheckAll("list", new[] { 1, 2 }, [2, 1])
            .Check<string?>("null", null, "x");
        Assert.Equal(["value", "list", "null"], restart.Changed);
    }
}
