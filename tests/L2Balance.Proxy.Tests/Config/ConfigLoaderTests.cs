using L2Balance.Proxy.Config;
using Xunit;

namespace L2Balance.Proxy.Tests.Config;

public class ConfigLoaderTests
{
    [Fact]
    public void Load_MissingFile_IsAnErrorAtLineZero()
    {
        string path = Path.Combine(Path.GetTempPath(), $"missing-{Guid.NewGuid():N}.conf");
        var result = ConfigLoader.Load(path);
        Assert.Null(result.Options);
        var error = Assert.Single(result.Errors);
        Assert.Equal(new ConfigError(path, 0, 0, "configuration file not found"), error);
        Assert.Equal($"{path}: configuration file not found", error.ToString());
    }

    [Fact]
    public void Load_ExistingFile_IsParsedWithItsPathAsSource()
    {
        string path = Path.Combine(Path.GetTempPath(), $"l2proxy-{Guid.NewGuid():N}.conf");
        File.WriteAllText(path, "internal: 127.0.0.1\nbogus: 1\n");
        try
        {
            var result = ConfigLoader.Load(path);
            Assert.Equal([new ConfigError(path, 2, 1, "unknown keyword 'bogus'")], result.Errors);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
