using System.Net;
using L2Balance.Proxy.Auth;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Rules;
using Xunit;

namespace L2Balance.Proxy.Tests.Auth;

/// <summary>The keytabs a configuration names are checked before it serves (issue 20): present, and closed to others.</summary>
public sealed class GssapiKeytabsTests : IDisposable
{
    /// <summary>socksmethod gssapi with <paramref name="flagKeytab"/> as --gssapi-keytab and <paramref name="ruleKeytab"/> in the client rule.</summary>
    private static ProxyOptions Gssapi(string? flagKeytab, string? ruleKeytab) => new()
    {
        Internal = [new ListenSpec(IPAddress.Loopback, null, 1080)],
        SocksMethods = [MethodKind.Gssapi],
        GssapiKeytab = flagKeytab,
        ClientRules = [new ClientRule(RuleAction.Pass, AddressMatcher.Any, AddressMatcher.Any, RuleLog.None, new RuleSource(1, 0),
            ruleKeytab is null ? null : new GssapiSettings(ruleKeytab, null, null, false))],
    };

    /// <summary>Keytabs of the test: a temp directory of its own, removed with it.</summary>
    private readonly string _directory = Directory.CreateTempSubdirectory("l2proxy-keytab-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Keytab(string name, string octal)
    {
        string path = Path.Combine(_directory, name);
        File.WriteAllBytes(path, [5, 2]);
        File.SetUnixFileMode(path, (UnixFileMode)Convert.ToInt32(octal, 8));
        return path;
    }

    [Theory]
    [InlineData("644", "readable")]
    [InlineData("604", "readable")]
    [InlineData("602", "writable")]
    public void Check_RuleKeytabOpenToOthers_IsRefusedWithTheChmodThatFixesIt(string octal, string how)
    {
        string path = Keytab("socks.keytab", octal);
        var error = GssapiKeytabs.Check(Gssapi(null, path));
        Assert.NotNull(error);
        Assert.Contains($"{path} is {how} by others (mode 0{octal})", error, StringComparison.Ordinal);
        Assert.Contains($"chmod 600 {path}", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_FlagKeytabReadableByOthers_IsRefusedBesideAGoodRuleKeytab()
    {
        string open = Keytab("flag.keytab", "644");
        Assert.Contains(open, GssapiKeytabs.Check(Gssapi(open, Keytab("rule.keytab", "600"))), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("600")]
    [InlineData("640")]
    [InlineData("400")]
    public void Check_KeytabsClosedToOthers_AreAccepted(string octal) =>
        Assert.Null(GssapiKeytabs.Check(Gssapi(Keytab("flag.keytab", octal), Keytab("rule.keytab", octal))));

    [Fact]
    public void Check_MissingKeytab_IsRefused()
    {
        string path = Path.Combine(_directory, "absent.keytab");
        Assert.Equal($"gssapi keytab {path}: not found", GssapiKeytabs.Check(Gssapi(null, path)));
    }

    [Fact]
    public void Check_WithoutSocksmethodGssapi_IgnoresTheKeytabs() =>
        Assert.Null(GssapiKeytabs.Check(Gssapi(Keytab("flag.keytab", "644"), null) with { SocksMethods = [MethodKind.None] }));
}
