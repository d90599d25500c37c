using System.Text;
using L2Balance.Proxy.Auth;
using Xunit;

namespace L2Balance.Proxy.Tests.Auth;

public sealed class UserStoreTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("l2proxy-users-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string PathOf(string name) => System.IO.Path.Combine(_directory, name);

    [Fact]
    public void SetPassword_NewFile_IsMode0600AndVerifies()
    {
        string path = PathOf("users");
        UserStore.SetPassword(path, "alice", "s3cret");
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        var store = UserStore.Load(path);
        Assert.Equal(1, store.Count);
        Assert.True(store.Verify("alice", "s3cret"));
        Assert.True(store.Verify("alice", "s3cret")); // cached
        Assert.False(store.Verify("alice", "S3cret"));
        Assert.False(store.Verify("bob", "s3cret"));
        Assert.False(store.Verify("alice", ""));

        string[] fields = File.ReadAllText(path).TrimEnd('\n').Split(':');
        Assert.Equal(["alice", "pbkdf2-sha256", "100000"], fields[..3]);
        Assert.Equal(UserStore.SaltBytes, Convert.FromBase64String(fields[3]).Length);
        Assert.Equal(UserStore.HashBytes, Convert.FromBase64String(fields[4]).Length);
    }

    [Fact]
    public void SetPassword_ExistingFile_ChangesOneUserAndKeepsOtherLines()
    {
        string path = PathOf("users");
        File.WriteAllText(path, "# operators\n\n");
        UserStore.SetPassword(path, "alice", "one");
        UserStore.SetPassword(path, "bob", "two");
        string bobLine = File.ReadAllLines(path)[3];
        UserStore.SetPassword(path, "alice", "three");

        string[] lines = File.ReadAllLines(path);
        Assert.Equal(4, lines.Length);
        Assert.Equal("# operators", lines[0]);
        Assert.Equal("", lines[1]);
        Assert.StartsWith("alice:", lines[2], StringComparison.Ordinal);
        Assert.Equal(bobLine, lines[3]);

        var store = UserStore.Load(path);
        Assert.False(store.Verify("alice", "one"));
        Assert.True(store.Verify("alice", "three"));
        Assert.True(store.Verify("bob", "two"));
        Assert.Empty(Directory.GetFiles(_directory, "*.tmp"));
    }

    [Fact]
    public void SetPassword_UnicodeNameAndPassword_Verifies()
    {
        string path = PathOf("users");
        UserStore.SetPassword(path, "zoë", "pässwörd ✓");
        Assert.True(UserStore.Load(path).Verify("zoë", "pässwörd ✓"));
    }

    [Theory]
    [InlineData("alice:pbkdf2-sha256:100000:AAAA", "expected NAME:pbkdf2-sha256:ITERATIONS:SALT:HASH (5 fields), found 4")]
    [InlineData("alice:md5:100000:{salt}:{hash}", "unsupported hash scheme 'md5' (only pbkdf2-sha256)")]
    [InlineData("alice:pbkdf2-sha256:10:{salt}:{hash}", "bad iteration count '10' (1000..10000000)")]
    [InlineData("alice:pbkdf2-sha256:lots:{salt}:{hash}", "bad iteration count 'lots' (1000..10000000)")]
    [InlineData("alice:pbkdf2-sha256:100000:!!:{hash}", "bad salt: expected base64 of at least 16 bytes")]
    [InlineData("alice:pbkdf2-sha256:100000:AAAA:{hash}", "bad salt: expected base64 of at least 16 bytes")]
    [InlineData("alice:pbkdf2-sha256:100000:{salt}:AAAA", "bad hash: expected base64 of 32 bytes")]
    [InlineData(":pbkdf2-sha256:100000:{salt}:{hash}", "user name must be 1..255 bytes of UTF-8")]
    public void Parse_MalformedLine_IsRejectedWithPathAndLine(string line, string message)
    {
        string salt = Convert.ToBase64String(new byte[16]), hash = Convert.ToBase64String(new byte[32]);
        string path = PathOf("users");
        File.WriteAllText(path, "# comment\n" + line.Replace("{salt}", salt, StringComparison.Ordinal).Replace("{hash}", hash, StringComparison.Ordinal) + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var error = Assert.Throws<InvalidDataException>(() => UserStore.Load(path));
        Assert.Equal($"{path}:2: {message}", error.Message);
    }

    [Fact]
    public void Parse_DuplicateUser_IsRejected()
    {
        string line = UserStore.FormatLine("alice", "x", UserStore.MinIterations);
        var error = Assert.Throws<InvalidDataException>(() => UserStore.Parse(line + "\n" + line + "\n", "u"));
        Assert.Equal("u:2: user 'alice' is listed twice", error.Message);
    }

    [Fact]
    public void Parse_CrLfAndComments_AreAccepted()
    {
        string line = UserStore.FormatLine("alice", "x", UserStore.MinIterations);
        var store = UserStore.Parse("# users\r\n   \r\n" + line + "\r\n  # indented comment\r\n", "u");
        Assert.True(store.Verify("alice", "x"));
    }

    [Theory]
    [InlineData("a:b", "user name must not contain ':' or a line break")]
    [InlineData("a\nb", "user name must not contain ':' or a line break")]
    [InlineData("", "user name must be 1..255 bytes of UTF-8")]
    [InlineData("#root", "user name must not start with '#'")]
    public void CheckUserName_BadName_IsRefusedWithItsReason(string name, string message)
    {
        Assert.Equal(message, UserStore.CheckUserName(name));
        Assert.Throws<ArgumentException>(() => UserStore.SetPassword(PathOf("users"), name, "pw"));
        Assert.False(File.Exists(PathOf("users")));
    }

    [Fact]
    public void CheckNameAndPassword_OverlongInBytes_AreRefusedAsRfc1929Says()
    {
        Assert.Null(UserStore.CheckUserName(new string('a', 255)));
        Assert.NotNull(UserStore.CheckUserName(new string('a', 256)));
        Assert.NotNull(UserStore.CheckUserName(new string('é', 128))); // 256 bytes
        Assert.Null(UserStore.CheckPassword(new string('p', 255)));
        Assert.NotNull(UserStore.CheckPassword(new string('p', 256)));
        Assert.NotNull(UserStore.CheckPassword(""));
        Assert.Throws<ArgumentException>(() => UserStore.FormatLine("a", new string('p', 256)));
    }

    [Fact]
    public void Verify_OverlongInput_IsRejectedWithoutThrowing()
    {
        var store = UserStore.Parse(UserStore.FormatLine("alice", "x", UserStore.MinIterations), "u");
        Assert.False(store.Verify("alice", new string('x', 300)));
        Assert.False(store.Verify(new string('a', 300), "x"));
        Assert.Equal(255, Encoding.UTF8.GetByteCount(new string('p', 255)));
    }

    [Fact]
    public void Load_MissingFile_Throws()
    {
        Assert.Throws<FileNotFoundException>(() => UserStore.Load(PathOf("nope")));
    }

    [Theory]
    [InlineData("644", "is readable by others")]
    [InlineData("604", "is readable by others")]
    [InlineData("606", "is readable by others")]
    [InlineData("602", "is writable by others")]
    [InlineData("660", "is writable by its group")]
    [InlineData("620", "is writable by its group")]
    public void Load_FileOpenToOthers_IsRefusedWithTheChmodThatFixesIt(string octal, string why)
    {
        string path = PathOf("users");
        UserStore.SetPassword(path, "alice", "s3cret");
        File.SetUnixFileMode(path, (UnixFileMode)Convert.ToInt32(octal, 8));

        var error = Assert.Throws<InvalidDataException>(() => UserStore.Load(path));

        Assert.Contains($"{path} {why} (mode 0{octal})", error.Message, StringComparison.Ordinal);
        Assert.Contains($"chmod 600 {path}", error.Message, StringComparison.Ordinal);
        Assert.Contains($"chmod 640 {path}", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("600")]
    [InlineData("640")]
    [InlineData("400")]
    [InlineData("440")]
    public void Load_FileClosedToOthers_IsAccepted(string octal)
    {
        string path = PathOf("users");
        UserStore.SetPassword(path, "alice", "s3cret");
        File.SetUnixFileMode(path, (UnixFileMode)Convert.ToInt32(octal, 8));

        Assert.True(UserStore.Load(path).Verify("alice", "s3cret"));
    }
}
