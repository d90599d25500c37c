using L2Balance.Balancer.Config;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.L2Bal.Tests.Config;

/// <summary>
/// The key file: refused when others can read it or anyone but its owner can write it, group-readable
/// only for the daemon's group (pure checks, then real files with chmod and chown), and
/// <c>genkey --output</c>, which never leaves a half-written or too-open file.
/// </summary>
public sealed class ClusterKeyFileTests : IDisposable
{
    private const uint Daemon = 0;
    private const uint L2BalGroup = 990;
    private const uint Staff = 50;
    private readonly string _dir = Directory.CreateTempSubdirectory("l2bal-key-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string? Problem(uint uid, uint gid, int mode, uint? l2balGroup = L2BalGroup) =>
        ClusterKeyFile.Problem("/etc/l2balance/key", new FileOwnership(uid, gid, (UnixFileMode)mode), Daemon, Daemon, l2balGroup, g => g == Staff ? "staff" : $"{g}");

    [Theory]
    [InlineData(0, 0, 0b110_000_000)]
    [InlineData(0, 0, 0b100_000_000)]
    [InlineData(0, 0, 0b110_100_000)]
    [InlineData(0, L2BalGroup, 0b110_100_000)]
    [InlineData(0, Staff, 0b110_000_000)]
    public void Problem_OwnerRootAndNoOneElseWrites_IsNone(uint uid, uint gid, int mode) =>
        Assert.Null(Problem(uid, gid, mode));

    [Fact]
    public void Problem_ReadableByOthers_NamesTheChmod() =>
        Assert.Equal("key file /etc/l2balance/key has mode 0644: others can read it: chmod 640 /etc/l2balance/key", Problem(0, 0, 0b110_100_100));

    [Fact]
    public void Problem_WritableByOthers_IsRefused() =>
        Assert.Equal("key file /etc/l2balance/key has mode 0602: others can write it: chmod 640 /etc/l2balance/key", Problem(0, L2BalGroup, 0b110_000_010));

    [Fact]
    public void Problem_WritableByGroup_IsRefused() =>
        Assert.Equal("key file /etc/l2balance/key has mode 0660: group 990 can write it: chmod 640 /etc/l2balance/key", Problem(0, L2BalGroup, 0b110_110_000));

    [Fact]
    public void Problem_ReadableByAnotherGroup_NamesTheChownAndTheChmod() =>
        Assert.Equal(
            "key file /etc/l2balance/key has mode 0640 and group staff, which is not the daemon's: chown root:l2bal /etc/l2balance/key, or chmod 600 /etc/l2balance/key",
            Problem(0, Staff, 0b110_100_000));

    [Fact]
    public void Problem_ReadableByAnotherGroupWithoutAnL2BalGroup_NamesTheChmod() =>
        Assert.Equal(
            "key file /etc/l2balance/key has mode 0640 and group staff, which is not the daemon's: chmod 600 /etc/l2balance/key",
            Problem(0, Staff, 0b110_100_000, l2balGroup: null));

    [Fact]
    public void Problem_OwnedByAnotherUser_NamesTheChown() =>
        Assert.Equal(
            "key file /etc/l2balance/key is owned by uid 1000, who could change the cluster's key: chown root:l2bal /etc/l2balance/key",
            Problem(1000, 0, 0b110_000_000));

    [Fact]
    public void Load_OwnerOnlyFile_ReturnsTheKeyWithoutWhiteSpace()
    {
        var path = Write("  0123456789abcdef0123\n", 0b110_000_000);
        var key = ClusterKeyFile.Load(path, out var error);
        Assert.Null(error);
        Assert.Equal("0123456789abcdef0123"u8.ToArray(), key);
    }

    [Theory]
    [InlineData(0b110_100_100, "others can read it")]
    [InlineData(0b110_110_000, "can write it")]
    [InlineData(0b111_111_111, "others can read it")]
    public void Load_FileTooOpen_IsRefusedNamingTheFix(int mode, string why)
    {
        var path = Write("0123456789abcdef0123\n", mode);
        Assert.Null(ClusterKeyFile.Load(path, out var error));
        Assert.Contains(why, error, StringComparison.Ordinal);
        Assert.Contains($"chmod 6", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_GroupReadableByTheDaemonsOwnGroup_IsAccepted()
    {
        var path = Write("0123456789abcdef0123\n", 0b110_100_000);
        Assert.NotNull(ClusterKeyFile.Load(path, out var error));
        Assert.Null(error);
    }

    [SkippableFact]
    public void Load_GroupReadableByAnotherGroup_IsRefused()
    {
        Skip.IfNot(SystemAccounts.EffectiveUserId == 0, "giving a file to another group needs root");
        var path = Write("0123456789abcdef0123\n", 0b110_100_000);
        Assert.NotNull(SystemAccounts.GroupId("users")); // Debian's base-passwd always has it
        Assert.Equal(0, Chgrp(path, "users"));
        Assert.Null(ClusterKeyFile.Load(path, out var error));
        Assert.Contains("group users, which is not the daemon's", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_ShortKey_IsRefusedNamingGenkey()
    {
        var path = Write("short\n", 0b110_000_000);
        Assert.Null(ClusterKeyFile.Load(path, out var error));
        Assert.Equal($"key file {path}: the key has 5 bytes; at least 16 are needed (make one with 'l2bal genkey --output {path}')", error);
    }

    [Fact]
    public void Load_MissingFile_NamesGenkey()
    {
        var path = Path.Combine(_dir, "none");
        Assert.Null(ClusterKeyFile.Load(path, out var error));
        Assert.Equal($"key file {path}: no such file (make one with 'l2bal genkey --output {path}')", error);
    }

    [Fact]
    public void Create_NewFile_WritesOneKeyLineOwnerOnlyOrForTheL2BalGroup()
    {
        var path = Path.Combine(_dir, "cluster.key");
        var done = ClusterKeyFile.Create(path, force: false, out var error);
        Assert.Null(error);
        Assert.StartsWith($"wrote a new key to {path}", done, StringComparison.Ordinal);
        var text = File.ReadAllText(path);
        Assert.Matches("^[0-9a-f]{64}\n$", text);
        var expected = SystemAccounts.GroupId(SystemAccounts.DaemonAccount) is null ? 0b110_000_000 : 0b110_100_000;
        Assert.Equal((UnixFileMode)expected, File.GetUnixFileMode(path));
        Assert.NotNull(ClusterKeyFile.Load(path, out error));
        Assert.Equal([path], Directory.GetFiles(_dir));
    }

    [Fact]
    public void Create_ExistingFile_IsRefusedAndLeftAsItWas()
    {
        var path = Write("the old key, kept as it is\n", 0b110_000_000);
        Assert.Null(ClusterKeyFile.Create(path, force: false, out var error));
        Assert.Equal($"genkey: {path} exists: give --force to replace it (peers keep the old key until it is copied to them)", error);
        Assert.Equal("the old key, kept as it is\n", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFiles(_dir));
    }

    [Fact]
    public void Create_ExistingFileWithForce_IsReplacedAndItsModeTightened()
    {
        var path = Write("the old key, readable by all\n", 0b110_100_100);
        Assert.NotNull(ClusterKeyFile.Create(path, force: true, out var error));
        Assert.Null(error);
        Assert.Matches("^[0-9a-f]{64}\n$", File.ReadAllText(path));
        Assert.Equal(UnixFileMode.None, File.GetUnixFileMode(path) & (UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.GroupWrite));
    }

    [Fact]
    public void Create_MissingDirectory_FailsAndLeavesNothing()
    {
        var path = Path.Combine(_dir, "no-such-dir", "cluster.key");
        Assert.Null(ClusterKeyFile.Create(path, force: false, out var error));
        Assert.StartsWith($"genkey: cannot write {path}: ", error, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public async Task Create_RepeatedWithForceWhileRead_NeverShowsAPartialKey()
    {
        var path = Path.Combine(_dir, "cluster.key");
        Assert.NotNull(ClusterKeyFile.Create(path, force: false, out _));
        using var stop = new CancellationTokenSource();
        var seen = new System.Collections.Concurrent.ConcurrentQueue<int>();
        var reader = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    seen.Enqueue(File.ReadAllBytes(path).Length);
                }
                catch (FileNotFoundException)
                {
                    seen.Enqueue(-1);
                }
            }
        });
        // Bounded in count: replace until the reader has looked 500 times, at most 5,000 replacements.
        for (var i = 0; i < 5000 && seen.Count < 500; i++)
        {
            Assert.NotNull(ClusterKeyFile.Create(path, force: true, out _));
        }
        await stop.CancelAsync();
        await reader.WithTimeout();
        Assert.All(seen, length => Assert.True(length is -1 or 65, $"a reader saw {length} bytes"));
        Assert.Contains(65, seen);
        Assert.Equal([path], Directory.GetFiles(_dir));
    }

    private string Write(string text, int mode)
    {
        var path = Path.Combine(_dir, $"key-{Guid.NewGuid():N}");
        File.WriteAllText(path, text);
        File.SetUnixFileMode(path, (UnixFileMode)mode);
        return path;
    }

    private static int Chgrp(string path, string group)
    {
        using var chgrp = System.Diagnostics.Process.Start("chgrp", [group, path]);
        chgrp.WaitForExit();
        return chgrp.ExitCode;
    }
}
