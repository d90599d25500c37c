using L2Balance.Lab.Cluster;
using Xunit;

namespace L2Balance.Lab.Tests.Balancer.Config;

/// <summary>
/// The published l2bal's key file handling, as an operator meets it: <c>genkey --output</c> makes a
/// file that <c>check-config</c> accepts and refuses to overwrite it; a key others can read is
/// refused with the fix. Nothing here binds a socket or starts the daemon.
/// </summary>
public sealed class KeyFileTests : IDisposable
{
    private const string BalancerConfig = "interface eth0\nvip 198.18.0.10/24\nnode-id 1\nnode-count 3\n";
    private readonly string _dir = Directory.CreateTempSubdirectory("l2bal-keyfile-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task GenKeyOutput_ThenCheckConfig_AcceptsTheKeyAndRefusesToOverwriteIt()
    {
        var key = Path.Combine(_dir, "cluster.key");
        var (code, stdout, stderr) = await PublishedProgram.RunAsync(ClusterBinaries.L2Bal, "genkey", "--output", key);
        Assert.True(code == 0, stderr);
        Assert.StartsWith($"wrote a new key to {key}", stdout, StringComparison.Ordinal);
        var written = await File.ReadAllTextAsync(key);
        Assert.Matches("^[0-9a-f]{64}\n$", written);
        Assert.Equal(UnixFileMode.None, File.GetUnixFileMode(key) & (UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.GroupWrite));

        (code, stdout, _) = await PublishedProgram.RunAsync(ClusterBinaries.L2Bal, "check-config", Config(key));
        Assert.Equal((0, "configuration OK\n"), (code, stdout));

        (code, _, stderr) = await PublishedProgram.RunAsync(ClusterBinaries.L2Bal, "genkey", "--output", key);
        Assert.Equal(1, code);
        Assert.Contains("exists: give --force to replace it", stderr, StringComparison.Ordinal);
        Assert.Equal(written, await File.ReadAllTextAsync(key));
    }

    [SkippableFact(typeof(LabUnavailableException))]
    public async Task CheckConfig_KeyReadableByOthers_Exits78NamingTheChmod()
    {
        var key = Path.Combine(_dir, "open.key");
        await File.WriteAllTextAsync(key, "0123456789abcdef0123456789abcdef\n");
        File.SetUnixFileMode(key, (UnixFileMode)0b110_100_100);

        var (code, stdout, stderr) = await PublishedProgram.RunAsync(ClusterBinaries.L2Bal, "check-config", Config(key));

        Assert.Equal(78, code);
        Assert.Equal("", stdout);
        Assert.Equal($"l2bal: key file {key} has mode 0644: others can read it: chmod 640 {key}\n", stderr);
    }

    private string Config(string key)
    {
        var path = Path.Combine(_dir, $"l2bal-{Guid.NewGuid():N}.conf");
        File.WriteAllText(path, BalancerConfig + $"key-file {key}\n");
        return path;
    }
}
