using System.Net;
using L2Balance.Common.CommandLine;
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

    private static string Output(params string[] args) =>
        Assert.IsType<CommandLineResult.Output>(CommandLine.Parse(args)).Text;

    [Fact]
    public void Parse_ListenOnly_IsRefusedSayingWhatToAdd()
    {
        var invalid = Assert.IsType<CommandLineResult.Invalid>(CommandLine.Parse(["--listen", "127.0.0.1:1080"]));

        Assert.Equal([CommandLine.NoClientPolicy], invalid.Messages);
        Assert.Equal(ExitCodes.Usage, invalid.ExitCode);
        Assert.Contains("--allow CIDR", invalid.Messages[0], StringComparison.Ordinal);
    }

    [Fact]
    public void Run_UsersWithoutAllow_ServesAnyAddressThatLogsIn()
    {
        var run = Run("--listen", "127.0.0.1:1080", "--users", "/etc/l2proxy.users");

        Assert.Empty(run.Warnings);
        Assert.Equal([IPAddress.Any, IPAddress.IPv6Any], run.Options.ClientRules.Select(r => r.From.Network));
        Assert.Equal([MethodKind.Username], run.Options.SocksMethods);
    }

    [Fact]
    public void Run_GssapiKeytabWithoutAllow_ServesAnyAddressThatAuthenticates()
    {
        var run = Run("--listen", "127.0.0.1:1080", "--gssapi-keytab", "/etc/l2proxy/socks.keytab", "--gssapi-servicename", "socks/vip.l2lab.test");

        Assert.Equal([IPAddress.Any, IPAddress.IPv6Any], run.Options.ClientRules.Select(r => r.From.Network));
        Assert.Equal([MethodKind.Gssapi], run.Options.SocksMethods);
        Assert.Equal("/etc/l2proxy/socks.keytab", run.Options.GssapiKeytab);
        Assert.Equal("socks/vip.l2lab.test", run.Options.GssapiServiceName);
    }

    [Fact]
    public void Run_GssapiAndUsers_PrefersGssapi() =>
        Assert.Equal([MethodKind.Gssapi, MethodKind.Username],
            Run("--listen", "127.0.0.1:1080", "--users", "/u", "--gssapi-keytab", "/k").Options.SocksMethods);

    [Fact]
    public void Parse_RelativeGssapiKeytab_IsRefused()
    {
        var invalid = Assert.IsType<CommandLineResult.Invalid>(CommandLine.Parse(["--listen", "127.0.0.1:1080", "--gssapi-keytab", "socks.keytab"]));
        Assert.Equal(["--gssapi-keytab 'socks.keytab': give an absolute path"], invalid.Messages);
    }

    [Fact]
    public void Run_ListenAndAllow_TakesTheDefaults()
    {
        var run = Run("--listen", "127.0.0.1:1080", "--allow", "10.0.0.0/8");
        Assert.Equal([new ListenSpec(IPAddress.Loopback, null, 1080)], run.Options.Internal);
        Assert.Empty(run.Warnings);
        Assert.Single(run.Options.ClientRules);
        Assert.Equal(2, run.Options.SocksRules.Count);
        Assert.Equal(IPAddress.Parse("10.0.0.0"), run.Options.ClientRules[0].From.Network);
        Assert.All(run.Options.SocksRules, r => Assert.Equal(RuleAction.Pass, r.Action));
        Assert.Equal([MethodKind.None], run.Options.SocksMethods);
        Assert.Equal("flags", run.Options.Source);
        var (o, d) = (run.Options, ProxyOptions.Defaults);
        Assert.Equal(
            (d.NegotiateTimeout, d.IoTimeout, d.ConnectTimeout, d.MaxClients, d.MaxClientsPerAddress, d.MaxUdpAssociations, d.Debug, d.Workers, d.PortRange, d.Metrics),
            (o.NegotiateTimeout, o.IoTimeout, o.ConnectTimeout, o.MaxClients, o.MaxClientsPerAddress, o.MaxUdpAssociations, o.Debug, o.Workers, o.PortRange, o.Metrics));
        Assert.Equal(d.LogOutput, o.LogOutput);
    }

    [Fact]
    public void Run_Metrics_IsAddressAndPort()
    {
        var run = Run("--listen", "127.0.0.1:1080", "--allow", "10.0.0.0/8", "--metrics", "[::1]:9180");

        Assert.Equal(new IPEndPoint(IPAddress.IPv6Loopback, 9180), run.Options.Metrics);
        Assert.Null(Run("--listen", "127.0.0.1:1080", "--allow", "10.0.0.0/8").Options.Metrics);
    }

    [Fact]
    public void Run_Workers_IsACount()
    {
        Assert.Equal(4, Run("--listen", "127.0.0.1:1080", "--allow", "10.0.0.0/8", "--workers", "4").Options.Workers);
        Assert.Equal(1, Run("--listen", "127.0.0.1:1080", "--allow", "10.0.0.0/8").Options.Workers);
    }

    [Fact]
    public void Run_EveryFlag_IsRead()
    {
        var run = Run(
            "--listen", "0.0.0.0:1080", "--listen=[::1]:1081", "--external", "192.0.2.1", "--external", "eth1",
            "--allow", "10.0.0.0/8", "--allow", "2001:db8::/32", "--users", "/etc/users", "--port-range", "40000-40999",
            "--negotiate-timeout", "5s", "--io-timeout", "0s", "--connect-timeout", "1.5s", "--max-clients", "100",
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
        Assert.Equal(TimeSpan.FromSeconds(1.5), o.ConnectTimeout);
        Assert.Equal((100, 10, 20), (o.MaxClients, o.MaxClientsPerAddress, o.MaxUdpAssociations));
        Assert.Equal([new LogTarget(LogTargetKind.Syslog, Facility: "daemon"), new LogTarget(LogTargetKind.File, Path: "/var/log/p.log")], o.LogOutput);
        Assert.Equal(1, o.Debug);
    }

    [Theory]
    [InlineData("--negotiate-timeout", "500ms", 0.5)]
    [InlineData("--negotiate-timeout", "2m", 120.0)]
    [InlineData("--io-timeout", "0s", 0.0)]
    [InlineData("--io-timeout", "1h", 3600.0)]
    [InlineData("--connect-timeout", "0.25s", 0.25)]
    public void Run_TimeoutWithUnit_IsRead(string flag, string value, double seconds)
    {
        var o = Run("--listen", "127.0.0.1:1080", "--allow", "10.0.0.0/8", flag, value).Options;
        Assert.Equal(TimeSpan.FromSeconds(seconds), flag switch
        {
            "--negotiate-timeout" => o.NegotiateTimeout,
            "--io-timeout" => o.IoTimeout,
            _ => o.ConnectTimeout,
        });
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    public void Help_OfTheProgram_ListsEveryFlagAndPasswd(string flag)
    {
        var help = Output(flag);
        Assert.Contains("--listen <ADDR:PORT>", help, StringComparison.Ordinal);
        Assert.Contains("--check-config <FILE>", help, StringComparison.Ordinal);
        Assert.Contains("passwd <USER>", help, StringComparison.Ordinal);
        Assert.Contains("--version", help, StringComparison.Ordinal);
    }

    [Fact]
    public void Help_OfTheProgram_ShowsEachDefaultFromTheOptions()
    {
        var help = Output("--help");
        var defaults = ProxyOptions.Defaults;
        Assert.Contains($"Limit for the outgoing connect [default: {DurationSyntax.Format(defaults.ConnectTimeout)}]", help, StringComparison.Ordinal);
        Assert.Contains("Limit for the outgoing connect [default: 30s]", help, StringComparison.Ordinal);
        Assert.Contains("Close a session idle this long; 0s: never [default: 0s]", help, StringComparison.Ordinal);
        Assert.Contains($"Concurrent sessions [default: {defaults.MaxClients}]", help, StringComparison.Ordinal);
        Assert.Contains($"Concurrent UDP associations [default: {defaults.MaxUdpAssociations}]", help, StringComparison.Ordinal);
    }

    [Fact]
    public void Help_OfPasswd_ShowsItsUsage()
    {
        Assert.Contains("Usage:\n  l2proxy passwd <USER> [options]", Output("passwd", "--help").ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.Equal(Output("passwd", "--help"), Output("passwd", "-h"));
    }

    [Fact]
    public void Version_OfTheProgram_IsTheRepositorysVersion()
    {
        var version = ProgramCommandLine.VersionOf(typeof(CommandLine).Assembly);
        Assert.Equal($"l2proxy {version}\n", Output("--version").ReplaceLineEndings("\n"));
        Assert.StartsWith("0.1.0", version, StringComparison.Ordinal);
    }

    [Fact]
    public void CheckConfig_File_IsTheCommand() =>
        Assert.Equal(new CommandLineResult.CheckConfig("/etc/sockd.conf"), CommandLine.Parse(["--check-config", "/etc/sockd.conf"]));

    [Fact]
    public void Passwd_UsersFileAndUser_IsTheCommand() =>
        Assert.Equal(new CommandLineResult.Passwd("/etc/users", "alice"), CommandLine.Parse(["passwd", "--users", "/etc/users", "alice"]));

    [Fact]
    public void Passwd_UserStartingWithAt_IsAUserNotAResponseFile() =>
        Assert.Equal(new CommandLineResult.Passwd("/u", "@a"), CommandLine.Parse(["passwd", "--users", "/u", "@a"]));

    [Fact]
    public void Invalid_MalformedCommandLine_IsAUsageErrorPointingAtItsHelp()
    {
        var invalid = Assert.IsType<CommandLineResult.Invalid>(CommandLine.Parse(["passwd", "--users", "/u"]));
        Assert.Equal(ExitCodes.Usage, invalid.ExitCode);
        Assert.Equal("l2proxy passwd --help", invalid.SeeHelp);
        Assert.Equal("l2proxy --help", Assert.IsType<CommandLineResult.Invalid>(CommandLine.Parse(["--io-timeout", "5"])).SeeHelp);
    }

    [Theory]
    [InlineData(new[] { "passwd", "alice" }, "Option '--users' is required.")]
    [InlineData(new[] { "passwd", "--users", "/u" }, "Required argument 'USER' missing for command: 'passwd'.")]
    [InlineData(new[] { "passwd", "--users", "/u", "a:b" }, "passwd: user name must not contain ':' or a line break")]
    [InlineData(new[] { "passwd", "--users", "/u", "a", "b" }, "Unrecognized command or argument 'b'.")]
    [InlineData(new[] { "--listen" }, "Required argument missing for option: '--listen'.")]
    [InlineData(new[] { "--frobnicate" }, "Unrecognized command or argument '--frobnicate'.")]
    [InlineData(new[] { "--frobnicate=1" }, "Unrecognized command or argument '--frobnicate=1'.")]
    [InlineData(new[] { "stray" }, "Unrecognized command or argument 'stray'.")]
    [InlineData(new[] { "--listen", "127.0.0.1:1080", "--version" }, "--version option cannot be combined with other arguments.")]
    [InlineData(new[] { "--listen", "127.0.0.1:1080", "--debug", "1", "--debug", "2" }, "Option '--debug' expects a single argument but 2 were provided.")]
    [InlineData(new string[0], "nothing to do: give --listen ADDR:PORT or --config FILE (see --help)")]
    [InlineData(new[] { "--listen", "127.0.0.1:1080", "--workers", "0" }, "--workers '0': workers must be between 1 and 64")]
    [InlineData(new[] { "--listen", "127.0.0.1:1080", "--workers", "four" }, "--workers 'four': give a whole number, at least 0")]
    [InlineData(new[] { "--listen", "127.0.0.1:1080", "--external", "no such" }, "--external 'no such': neither an address nor an interface name")]
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
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--io-timeout", "-5s" }, "--io-timeout '-5s': a duration cannot be negative")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--io-timeout", "0" }, "--io-timeout '0': a number alone has no unit: write 0ms or 0s")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--negotiate-timeout", "30" }, "--negotiate-timeout '30': a number alone has no unit: write 30ms or 30s")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--connect-timeout", "5 s" }, "--connect-timeout '5 s': unknown unit ' s': use ms, s, m or h, e.g. 40ms or 5s")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--negotiate-timeout", "0s" }, "--negotiate-timeout '0s': timeout.negotiate must be at least 1 second")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--connect-timeout", "30d" }, "--connect-timeout '30d': unknown unit 'd': use ms, s, m or h, e.g. 40ms or 5s")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--connect-timeout", "600h" }, "--connect-timeout '600h': timeout.connect is too long (at most 2147483 s)")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--max-clients", "0" }, "--max-clients '0': max clients must be at least 1")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--max-udp", "x" }, "--max-udp 'x': give a whole number, at least 0")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--log", "file.log" }, "--log: bad log target 'file.log': expected stderr, stdout, syslog, syslog/FACILITY or an absolute path")]
    [InlineData(new[] { "--listen", "1.2.3.4:1080", "--debug", "5" }, "--debug '5': give a whole number from 0 to 2")]
    [InlineData(new[] { "--allow", "10.0.0.0/8" }, "no internal address to listen on (internal: or --listen)")]
    [InlineData(new[] { "--check-config", "/a", "--debug", "1" }, "--check-config takes no other options")]
    [InlineData(new[] { "--config", "/a", "--debug", "3" }, "--debug '3': give a whole number from 0 to 2")]
    [InlineData(new[] { "--config", "/a", "--listen", "1.2.3.4:1080" }, "--config cannot be combined with --listen (only --debug); put them in the file")]
    [InlineData(new[] { "--config", "/nonexistent/dir/sockd.conf" }, "/nonexistent/dir/sockd.conf: configuration file not found (no such directory)")]
    public void Invalid_BadFlagOrValue_IsRefusedNamingIt(string[] args, string expected) => Assert.Equal([expected], Invalid(args));

    [Fact]
    public void Invalid_SeveralErrors_AreAllReported()
    {
        var messages = Invalid("--listen", "nope", "--bogus", "--io-timeout");
        Assert.Equal(
            ["Required argument missing for option: '--io-timeout'.", "Unrecognized command or argument '--bogus'."],
            messages.Order(StringComparer.Ordinal));
        Assert.Equal(2, Invalid("--listen", "1.2.3.4:99999", "--port-range", "5").Count);
    }

    [Fact]
    public void ParseListen_EveryForm_IsRead()
    {
        Assert.Null(CommandLine.ParseListen("[::1]:1080", out var v6));
        Assert.Equal(new ListenSpec(IPAddress.IPv6Loopback, null, 1080), v6);
        Assert.Null(CommandLine.ParseListen("eth0:1080", out var ifname));
        Assert.Equal(new ListenSpec(null, "eth0", 1080), ifname);
        Assert.Null(CommandLine.ParseListen("[::ffff:10.0.0.1]:1", out var mapped));
        Assert.Equal(IPAddress.Parse("10.0.0.1"), mapped.Address);
    }

    [Fact]
    public void Config_FileWithDebugFlag_DebugFlagWins()
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
    public void Config_DanteBareSeconds_StaySeconds()
    {
        string path = Path.Combine(Path.GetTempPath(), $"l2proxy-{Guid.NewGuid():N}.conf");
        System.IO.File.WriteAllText(path, "internal: 127.0.0.1 port = 1090\ntimeout.negotiate: 5\ntimeout.io: 0\ntimeout.connect: 7\n");
        try
        {
            var o = Run("--config", path).Options;
            Assert.Equal((TimeSpan.FromSeconds(5), TimeSpan.Zero, TimeSpan.FromSeconds(7)), (o.NegotiateTimeout, o.IoTimeout, o.ConnectTimeout));
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }

    [Fact]
    public void Config_ErrorsInTheFile_ArePositionedAndAConfigurationError()
    {
        string path = Path.Combine(Path.GetTempPath(), $"l2proxy-{Guid.NewGuid():N}.conf");
        System.IO.File.WriteAllText(path, "internal: 127.0.0.1\nsocksmethod: bsdauth\ntimeout.io: 5\n");
        try
        {
            var invalid = Assert.IsType<CommandLineResult.Invalid>(CommandLine.Parse(["--config", path]));
            Assert.Equal([$"{path}:2:14: unsupported method 'bsdauth'"], invalid.Messages);
            Assert.Equal(ExitCodes.Config, invalid.ExitCode);
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }
}
