using System.Net;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Rules;
using Xunit;

namespace L2Balance.Proxy.Tests.Config;

public class CommandLineTests
{
    private static CommandLineResult.Run Run(params string[] args)
    {
        var result = CommandLine.Parse(args);
        if (result is CommandLineResult.Invalid invalid)
        {
            Assert.Fail(string.Join("\n", invalid.Messages));
        }

        return Assert.IsType<CommandLineResult.Run>(result);
    }

    private static IReadOnlyList<string> Invalid(params string[] args) =>
        Assert.IsType<CommandLineResult.Invalid>(CommandLine.Parse(args)).Messages;

    [Fact]
    public void Minimal_ServesAnyoneWithAWarning()
    {
        var run = Run("--listen", "127.0.0.1:1080");
        Assert.Equal([new ListenSpec(IPAddress.Loopback, null, 1080)], run.Options.Internal);
        Assert.Equal(["no --allow given: clients from any address are served"], run.Warnings);
        Assert.Equal(2, run.Options.ClientRules.Count);
        Assert.Equal(4, run.Options.SocksRules.Count);
        Assert.Equal(IPAddress.Any, run.Options.ClientRules[0].From.Network);
        Assert.Equal(IPAddress.IPv6Any, run.Options.SocksRules[1].From.Network);
        Assert.All(run.Options.SocksRules, r => Assert.Equal(RuleAction.Pass, r.Action));
        Assert.Equal([MethodKind.None], run.Options.SocksMethods);
        Assert.Equal("flags", run.Options.Source);
    }

    [Fact]
    public void Metrics_ParsesAddressAndPort()
    {
        var run = Run("--listen", "127.0.0.1:1080", "--metrics", "[::1]:9180");

        Assert.Equal(new IPEndPoint(IPAddress.IPv6Loopback, 9180), run.Options.Metrics);
        Assert.Null(Run("--listen", "127.0.0.1:1080").Options.Metrics);
    }

    [Fact]
    public void Workers_ParsesCount()
    {
        Assert.Equal(4, Run("--listen", "127.0.0.1:1080", "--workers", "4").Options.Workers);
        Assert.Equal(1, Run("--listen", "127.0.0.1:1080").Options.Workers);
    }

    [Fact]
    public void AllFlags()
    {
        var run = Run(
            "--listen", "0.0.0.0:1080", "--listen=[::1]:1081", "--external", "192.0.2.1", "--external", "eth1",
            "--allow", "10.0.0.0/8", "--allow", "2001:db8::/32", "--users", "/etc/users", "--port-range", "40000-40999",
            "--negotiate-timeout", "5", "--io-timeout", "0", "--connect-timeout", "7", "--max-clients", "100",
            "--max-per-client", "10", "--max-udp", "20", "--log", "syslog/daemon", "--log", "/var/log/p.log", "--debug", "1");
        var o = run.Options;
        Assert.Empty(run.Warnings);
        Assert.Equal([new ListenSpec(IPAddress.Any, null, 1080), new ListenSpec(IPAddress.IPv6Loopback, null, 1081)], o.Internal);
        Assert.Equal([new ExternalSpec(IPAddress.Parse("192.0.2.1"), null), new ExternalSpec(null, "eth1")], o.External);
        Assert.Equal([IPAddress.Parse("10.0.0.0"), IPAddress.Parse("2001:db8::")], o.ClientRules.Select(r => r.From.Network));
        // Requests from each --allow network, then replies (bindreply, udpreply) to it.
        Assert.Equal([8, 32, 0, 0], o.SocksRules.Select(r => r.From.PrefixLength));
        Assert.Equal([0, 0, 8, 32], o.SocksRules.Select(r => r.To.PrefixLength));
        Assert.All(o.SocksRules.Take(2), r => Assert.Equal(AddressMatcher.Any, r.To));
        Assert.All(o.SocksRules.Take(2), r => Assert.Equal(new[] { RuleCommand.Connect, RuleCommand.Bind, RuleCommand.UdpAssociate }, r.Commands!.Order()));
        Assert.All(o.SocksRules.Skip(2), r => Assert.Equal(new[] { RuleCommand.BindReply, RuleCommand.UdpReply }, r.Commands!.Order()));
        Assert.Equal([MethodKind.Username], o.SocksMethods);
        Assert.Equal("/etc/users", o.UsersFile);
        Assert.Equal(new PortRange(40000, 40999), o.PortRange);
        Assert.Equal(TimeSpan.FromSeconds(5), o.NegotiateTimeout);
        Assert.Equal(TimeSpan.Zero, o.IoTimeout);
        Assert.Equal(TimeSpan.FromSeconds(7), o.ConnectTimeout);
        Assert.Equal((100, 10, 20), (o.MaxClients, o.MaxClientsPerAddress, o.MaxUdpAssociations));
        Assert.Equal([new LogTarget(LogTargetKind.Syslog, Facility: "daemon"), new LogTarget(LogTargetKind.File, Path: "/var/log/p.log")], o.LogOutput);
        Assert.Equal(1, o.Debug);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    public void Help(string flag)
    {
        var help = Assert.IsType<CommandLineResult.Help>(CommandLine.Parse([flag]));
        Assert.Contains("--listen ADDR:PORT", help.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Version() => Assert.IsType<CommandLineResult.Version>(CommandLine.Parse(["--version"]));

    [Fact]
    public void CheckConfig() =>
        Assert.Equal(new CommandLineResult.CheckConfig("/etc/sockd.conf"), CommandLine.Parse(["--check-config", "/etc/sockd.conf"]));

    [Fact]
    public void Passwd() =>
        Assert.Equal(new CommandLineResult.Passwd("/etc/users", "alice"), CommandLine.Parse(["passwd", "--users", "/etc/users", "alice"]));

    [Theory]
    [InlineData(new[] { "passwd", "alice" }, "passwd: --users FILE is required")]
    [InlineData(new[] { "passwd", "--users", "/u" }, "passwd: USER is required")]
    [InlineData(new[] { "passwd", "--users", "/u", "a:b" }, "passwd: user name must not contain ':' or a line break")]
    [InlineData(new[] { "passwd", "--users", "/u", "a", "b" }, "passwd: unexpected argument 'b'")]
    [InlineData(new[] { "--listen" }, "--listen: missing value")]
    [InlineData(new[] { "--frobnicate" }, "unknown option '--frobnicate'")]
    [InlineData(new[] { "--frobnicate=1" }, "unknown option '--frobnicate'")]
    [InlineData(new[] { "stray" }, "unexpected argument 'stray'")]
    [InlineData(new string[0], "nothing to do: give --listen ADDR:PORT or --config FILE (see --help)")]
    [InlineData(new[] { "--listen", "127.0.0.1:1080", "--workers", "0" }, "workers must be between 1 and 64")]
    [InlineData(new[] { "--listen", "127.0.0.1:1080", "--workers", "four" }, "--workers: bad number 'four'")]
    [InlineData(new[] { "--listen", "127.0.0.1:1080", "--metrics", "eth0:9100" }, "--metrics: 'eth0:9100': give an address, not an interface name")]
    [InlineData(new[] { "--listen", "127.0.0.1:1080", "--metrics", "127.0.0.1" }, "--metrics: '127.0.0.1': expected ADDR:PORT (write IPv6 as [ADDR]:PORT)")]
    [InlineData(new[] { "--listen", "127.0.0.1" }, "--listen: '127.0.0.1': expected ADDR:PORT (write IPv6 as [ADDR]:PORT)")]
    [InlineData(new[] { "--listen", "::1:1080" }, "--listen: '::1:1080': expected ADDR:PORT (write IPv6 as [ADDR]:PORT)")]
    [InlineData(new[] { "--listen", "[::1]1080" }, "--listen: '[::1]1080': expected [IPv6]:PORT")]
    [InlineData(new[] { "--listen", "1.2.3.4:0" }, "--listen: '1.2.3.4:0': port 0 is not allowed here (1..65535)")]
    [InlineData(new[] { "--listen", "1.2.3.4:http" }, "--listen: '1.2.3.4:http': bad port 'http' (0..65535)")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--allow", "10.0.0.0/40" }, "--allow: bad prefix length or netmask '40' in '10.0.0.0/40' (0..32)")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--allow", ".example.com" }, "--allow: '.example.com' is not an address or network")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--port-range", "9-1" }, "--port-range: bad port range '9-1': 9 is above 1")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--io-timeout", "-5" }, "--io-timeout: negative duration '-5'")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--negotiate-timeout", "0" }, "timeout.negotiate must be at least 1 second")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--max-clients", "0" }, "max clients must be at least 1")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--max-udp", "x" }, "--max-udp: bad number 'x'")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--log", "file.log" }, "--log: bad log target 'file.log': expected stderr, stdout, syslog, syslog/FACILITY or an absolute path")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--debug", "5" }, "--debug: bad level '5': expected 0, 1 or 2")]
    [InlineData(new[] { "--allow", "10.0.0.0/8" }, "no internal address to listen on (internal: or --listen)")]
    [InlineData(new[] { "--check-config", "/a", "--debug", "1" }, "--check-config takes no other options")]
    [InlineData(new[] { "--config", "/a", "--listen", "1.2.3.4:1080" }, "--config cannot be combined with --listen (only --debug); put them in the file")]
    [InlineData(new[] { "--config", "/nonexistent/dir/sockd.conf" }, "/nonexistent/dir/sockd.conf: configuration file not found (no such directory)")]
    public void Errors(string[] args, string expected) => Assert.Equal([expected], Invalid(args));

    [Fact]
    public void SeveralErrors_AreAllReported()
    {
        var messages = Invalid("--listen", "nope", "--bogus", "--io-timeout");
        Assert.Equal(["unknown option '--bogus'", "--io-timeout: missing value"], messages);
        Assert.Equal(2, Invalid("--listen", "1.2.3.4:99999", "--port-range", "5").Count);
    }

    [Fact]
    public void ListenForms()
    {
        Assert.Null(CommandLine.ParseListen("[::1]:1080", out var v6));
        Assert.Equal(new ListenSpec(IPAddress.IPv6Loopback, null, 1080), v6);
        Assert.Null(CommandLine.ParseListen("eth0:1080", out var ifname));
        Assert.Equal(new ListenSpec(null, "eth0", 1080), ifname);
        Assert.Null(CommandLine.ParseListen("[::ffff:10.0.0.1]:1", out var mapped));
        Assert.Equal(IPAddress.Parse("10.0.0.1"), mapped.Address);
    }

    [Fact]
    public void Config_ReadsTheFile_AndDebugOverrides()
    {
        string path = Path.Combine(Path.GetTempPath(), $"l2proxy-{Guid.NewGuid():N}.conf");
        System.IO.File.WriteAllText(path, "internal: 127.0.0.1 port = 1090\ndebug: 0\nclient pass { from: 0/0 to: 0/0 }\nsocks pass { from: 0/0 to: 0/0 }\n");
        try
        {
            var run = Run("--config", path, "--debug", "2");
            Assert.Equal(2, run.Options.Debug);
            Assert.Equal(path, run.Options.Source);
            Assert.Equal(1090, run.Options.Internal[0].Port);
            Assert.Empty(run.Warnings);
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }

    [Fact]
    public void Config_Errors_ArePositioned()
    {
        string path = Path.Combine(Path.GetTempPath(), $"l2proxy-{Guid.NewGuid():N}.conf");
        System.IO.File.WriteAllText(path, "internal: 127.0.0.1\nsocksmethod: gssapi\n");
        try
        {
            Assert.Equal([$"{path}:2:14: unsupported method 'gssapi'"], Invalid("--config", path));
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }
}
