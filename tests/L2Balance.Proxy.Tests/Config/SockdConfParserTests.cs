using System.Net;
using L2Balance.Proxy.Config;
using L2Balance.Proxy.Protocol;
using L2Balance.Proxy.Rules;
using L2Balance.Tests.Common;
using Xunit;

namespace L2Balance.Proxy.Tests.Config;

public class SockdConfParserTests
{
    private const string File = "sockd.conf";

    private static ProxyOptions Ok(string text)
    {
        var result = SockdConfParser.Parse(text, File);
        Assert.True(result.Errors.Count == 0, string.Join("\n", result.Errors));
        Assert.NotNull(result.Options);
        return result.Options!;
    }

    private static string OneError(string text)
    {
        var result = SockdConfParser.Parse(text, File);
        Assert.Null(result.Options);
        Assert.True(result.Errors.Count == 1, string.Join("\n", result.Errors));
        return result.Errors[0].ToString();
    }

    private const string Rules = """

        client pass { from: 0/0 to: 0/0 }
        socks pass { from: 0/0 to: 0/0 }
        """;

    [Fact]
    public void Metrics_AddressAndPort_AreParsed()
    {
        var options = Ok("internal: 127.0.0.1 port = 1080\nmetrics: 127.0.0.1 port = 9180" + Rules);

        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 9180), options.Metrics);
    }

    [Fact]
    public void Workers_Count_IsParsed()
    {
        Assert.Equal(4, Ok("internal: 127.0.0.1 port = 1080\nworkers: 4" + Rules).Workers);
    }

    [Fact]
    public void Parse_DanteRedundancyExample_IsAcceptedAsIs()
    {
        var options = Ok(DanteExamples.Redundancy);

        Assert.Equal([new LogTarget(LogTargetKind.Syslog)], options.ErrorLog);
        Assert.Equal([new LogTarget(LogTargetKind.File, Path: "/var/log/sockd.log")], options.LogOutput);
        Assert.Equal([new ListenSpec(IPAddress.Parse("198.18.0.10"), null, 1080)], options.Internal);
        Assert.Equal([new ExternalSpec(IPAddress.Parse("198.18.0.1"), null)], options.External);
        var client = Assert.Single(options.ClientRules);
        Assert.Equal(RuleAction.Pass, client.Action);
        Assert.Equal(IPAddress.Any, client.From.Network);
        Assert.Equal(0, client.From.PrefixLength);
        Assert.Equal(RuleLog.Error | RuleLog.Connect | RuleLog.Disconnect, client.Log);
        Assert.Equal(new RuleSource(1, 7), client.Source);
        var socks = Assert.Single(options.SocksRules);
        Assert.Equal(new RuleSource(1, 12), socks.Source);
        Assert.Null(socks.Commands);
        Assert.Equal(RuleProtocol.Any, socks.Protocols);
        Assert.Equal(File, options.Source);
    }

    [Fact]
    public void Parse_CommonDanteSettings_AreAccepted()
    {
        var options = Ok("""
            internal: eth0 port = 1080
            user.privileged: root
            user.notprivileged: nobody
            debug: 0
            external.rotation: route
            external: eth1
            """ + Rules);
        Assert.Equal([new ListenSpec(null, "eth0", 1080)], options.Internal);
        Assert.Equal([new ExternalSpec(null, "eth1")], options.External);
        Assert.Equal("root", options.UserPrivileged);
        Assert.Equal("nobody", options.UserUnprivileged);
        Assert.Equal(0, options.Debug);
        Assert.Equal(ExternalRotation.Route, options.ExternalRotation);
    }

    [Theory]
    [InlineData("internal: 10.0.0.1", "10.0.0.1", 1080)]
    [InlineData("internal: 10.0.0.1 port=1081", "10.0.0.1", 1081)]
    [InlineData("internal: 10.0.0.1 port =1082", "10.0.0.1", 1082)]
    [InlineData("internal:10.0.0.1 port= 1083", "10.0.0.1", 1083)]
    [InlineData("internal: ::1 port = 1084", "::1", 1084)]
    [InlineData("internal: fe80::1 port = 1085", "fe80::1", 1085)]
    [InlineData("internal :\n 10.0.0.2\n port\n =\n 1086", "10.0.0.2", 1086)]
    public void Internal_EachSpelling_GivesAddressAndPort(string line, string address, int port)
    {
        var options = Ok(line + Rules);
        Assert.Equal([new ListenSpec(IPAddress.Parse(address), null, (ushort)port)], options.Internal);
    }

    [Fact]
    public void Parse_SeveralInternalAndExternal_KeepsThemAll()
    {
        var options = Ok("internal: 10.0.0.1 port = 1080\ninternal: ::1 port = 1081 eth0\nexternal: 192.0.2.1 2001:db8::1" + Rules);
        Assert.Equal(3, options.Internal.Count);
        Assert.Equal(new ListenSpec(null, "eth0", 1080), options.Internal[2]);
        Assert.Equal(2, options.External.Count);
    }

    [Fact]
    public void Parse_EverySupportedTopLevelKeyword_IsApplied()
    {
        var options = Ok("""
            internal: 0.0.0.0 port = 1080   # trailing comment
            external.rotation: same-same
            clientmethod: none
            socksmethod: username none
            users.file: /etc/l2proxy/users
            user.privileged: root
            user.unprivileged: sockd
            timeout.negotiate: 10
            timeout.io.tcp: 600
            timeout.io.udp: 600
            timeout.connect: 5
            logoutput: stderr syslog/daemon
            logoutput: stdout
            errorlog: /var/log/err.log
            debug: 2
            udp.portrange: 40000-40999
            """ + Rules);
        Assert.Equal(ExternalRotation.SameSame, options.ExternalRotation);
        Assert.Equal([MethodKind.None], options.ClientMethods);
        Assert.Equal([MethodKind.Username, MethodKind.None], options.SocksMethods);
        Assert.Equal("/etc/l2proxy/users", options.UsersFile);
        Assert.Equal("sockd", options.UserUnprivileged);
        Assert.Equal(TimeSpan.FromSeconds(10), options.NegotiateTimeout);
        Assert.Equal(TimeSpan.FromSeconds(600), options.IoTimeout);
        Assert.Equal(TimeSpan.FromSeconds(5), options.ConnectTimeout);
        Assert.Equal(
            [LogTarget.Stderr, new LogTarget(LogTargetKind.Syslog, Facility: "daemon"), new LogTarget(LogTargetKind.Stdout)],
            options.LogOutput);
        Assert.Equal([new LogTarget(LogTargetKind.File, Path: "/var/log/err.log")], options.ErrorLog);
        Assert.Equal(2, options.Debug);
        Assert.Equal(new PortRange(40000, 40999), options.PortRange);
    }

    [Fact]
    public void Parse_SettingsNotGiven_KeepTheirDefaults()
    {
        var options = Ok("internal: 127.0.0.1" + Rules);
        var defaults = new ProxyOptions();
        Assert.Equal(defaults.NegotiateTimeout, options.NegotiateTimeout);
        Assert.Equal(defaults.IoTimeout, options.IoTimeout);
        Assert.Equal(defaults.ConnectTimeout, options.ConnectTimeout);
        Assert.Equal(defaults.LogOutput, options.LogOutput);
        Assert.Equal([MethodKind.None], options.SocksMethods);
        Assert.Null(options.PortRange);
    }

    [Theory]
    [InlineData("udp.portrange: 40000 - 40999")]
    [InlineData("udp.portrange: 40000- 40999")]
    [InlineData("udp.portrange: 40000 -40999")]
    public void PortRange_AnySpacing_ParsesTheSame(string line)
    {
        Assert.Equal(new PortRange(40000, 40999), Ok("internal: 127.0.0.1\n" + line + Rules).PortRange);
    }

    [Fact]
    public void SocksRule_EveryField_IsParsed()
    {
        var options = Ok("""
            internal: 127.0.0.1
            socksmethod: none username
            users.file: /u
            client pass { from: 10.0.0.0/8 port >= 1024 to: 0/0 log: connect }
            client block { from: ::/0 to: 0/0 }
            socks block { from: 0/0 to: .example.com port = 25 }
            socks pass {
                from: 10.0.0.0/255.255.0.0 to: 2001:db8::/32 port 1 - 1024
                command: connect udpassociate bindreply
                protocol: tcp udp
                socksmethod: username
                user: alice bob
                udp.portrange: 50000-50100
                log: connect disconnect data error iooperation tcpinfo
            }
            """);
        Assert.Equal(2, options.ClientRules.Count);
        var first = options.ClientRules[0];
        Assert.Equal(IPAddress.Parse("10.0.0.0"), first.From.Network);
        Assert.Equal(8, first.From.PrefixLength);
        Assert.Equal(new PortMatcher(PortOperator.Ge, 1024), first.From.Port);
        Assert.Equal(RuleAction.Block, options.ClientRules[1].Action);
        Assert.Equal(new RuleSource(2, 5), options.ClientRules[1].Source);

        var block = options.SocksRules[0];
        Assert.Equal(".example.com", block.To.Domain);
        Assert.Equal(new PortMatcher(PortOperator.Eq, 25), block.To.Port);

        var pass = options.SocksRules[1];
        Assert.Equal(new RuleSource(2, 7), pass.Source);
        Assert.Equal(16, pass.From.PrefixLength);
        Assert.Equal(IPAddress.Parse("2001:db8::"), pass.To.Network);
        Assert.Equal(new PortMatcher(PortOperator.Range, 1, 1024), pass.To.Port);
        Assert.Equal(new HashSet<RuleCommand> { RuleCommand.Connect, RuleCommand.UdpAssociate, RuleCommand.BindReply }, pass.Commands);
        Assert.Equal(RuleProtocol.Any, pass.Protocols);
        Assert.Equal(new HashSet<MethodKind> { MethodKind.Username }, pass.Methods);
        Assert.Equal(new HashSet<string> { "alice", "bob" }, pass.Users);
        Assert.Equal(new PortRange(50000, 50100), pass.UdpPortRange);
        Assert.Equal(RuleLog.Connect | RuleLog.Disconnect | RuleLog.Data | RuleLog.Error | RuleLog.IOOperation | RuleLog.TcpInfo, pass.Log);
    }

    [Theory]
    [InlineData("port = 80", PortOperator.Eq, 80, 0)]
    [InlineData("port=80", PortOperator.Eq, 80, 0)]
    [InlineData("port eq 80", PortOperator.Eq, 80, 0)]
    [InlineData("port 80", PortOperator.Eq, 80, 0)]
    [InlineData("port != 80", PortOperator.Neq, 80, 0)]
    [InlineData("port!=80", PortOperator.Neq, 80, 0)]
    [InlineData("port neq 80", PortOperator.Neq, 80, 0)]
    [InlineData("port ne 80", PortOperator.Neq, 80, 0)]
    [InlineData("port >= 80", PortOperator.Ge, 80, 0)]
    [InlineData("port ge 80", PortOperator.Ge, 80, 0)]
    [InlineData("port <= 80", PortOperator.Le, 80, 0)]
    [InlineData("port le 80", PortOperator.Le, 80, 0)]
    [InlineData("port > 80", PortOperator.Gt, 80, 0)]
    [InlineData("port gt 80", PortOperator.Gt, 80, 0)]
    [InlineData("port < 80", PortOperator.Lt, 80, 0)]
    [InlineData("port lt 80", PortOperator.Lt, 80, 0)]
    [InlineData("port 1 - 1024", PortOperator.Range, 1, 1024)]
    [InlineData("port 1-1024", PortOperator.Range, 1, 1024)]
    [InlineData("port 1- 1024", PortOperator.Range, 1, 1024)]
    public void RulePort_EachOperator_IsParsed(string port, PortOperator op, int low, int high)
    {
        var options = Ok($"internal: 127.0.0.1\nclient pass {{ from: 0/0 to: 0/0 }}\nsocks pass {{ from: 0/0 to: 0/0 {port} }}");
        Assert.Equal(new PortMatcher(op, (ushort)low, (ushort)high), options.SocksRules[0].To.Port);
    }

    [Theory]
    [InlineData("0/0", "0.0.0.0", 0, null)]
    [InlineData("0.0.0.0/0", "0.0.0.0", 0, null)]
    [InlineData("::/0", "::", 0, null)]
    [InlineData("192.0.2.7", "192.0.2.7", 32, null)]
    [InlineData("192.0.2.0/24", "192.0.2.0", 24, null)]
    [InlineData("2001:db8::1", "2001:db8::1", 128, null)]
    [InlineData("2001:db8::/48", "2001:db8::", 48, null)]
    [InlineData(".example.com", null, 0, ".example.com")]
    [InlineData("Example.COM", null, 0, "example.com")]
    public void RuleAddress_EachForm_IsParsed(string text, string? network, int prefix, string? domain)
    {
        var options = Ok($"internal: 127.0.0.1\nclient pass {{ from: 0/0 to: 0/0 }}\nsocks pass {{ from: 0/0 to: {text} }}");
        var to = options.SocksRules[0].To;
        Assert.Equal(network is null ? null : IPAddress.Parse(network), to.Network);
        Assert.Equal(prefix, to.PrefixLength);
        Assert.Equal(domain, to.Domain);
    }

    [Fact]
    public void RuleNetwork_WithHostBits_IsClearedWithAWarning()
    {
        var result = SockdConfParser.Parse("internal: 127.0.0.1\nclient pass { from: 10.1.2.3/8 to: 0/0 }\nsocks pass { from: 0/0 to: 0/0 }", File);
        Assert.Equal(IPAddress.Parse("10.0.0.0"), result.Options!.ClientRules[0].From.Network);
        Assert.Contains(result.Warnings, w => w.StartsWith("sockd.conf:2:21: host bits set", StringComparison.Ordinal));
    }

    [Fact]
    public void Parse_WithoutRules_WarnsWithoutError()
    {
        var result = SockdConfParser.Parse("internal: 127.0.0.1", File);
        Assert.NotNull(result.Options);
        Assert.Equal(["no client/socks pass rule: every client will be refused"], result.Warnings);
    }

    [Theory]
    // Methods
    [InlineData("clientmethod: gssapi", "sockd.conf:2:15: unsupported clientmethod 'gssapi': gssapi is a socksmethod (Dante's clientmethod has no gssapi)")]
    [InlineData("socksmethod: none pam.username", "sockd.conf:2:19: unsupported method 'pam.username'")]
    [InlineData("socksmethod: bsdauth", "sockd.conf:2:14: unsupported method 'bsdauth'")]
    [InlineData("socksmethod: rfc931", "sockd.conf:2:14: unsupported method 'rfc931'")]
    [InlineData("socksmethod: magic", "sockd.conf:2:14: unknown method 'magic'")]
    [InlineData("socksmethod: none none", "sockd.conf:2:19: method 'none' listed twice")]
    [InlineData("clientmethod: rfc931", "sockd.conf:2:15: unsupported method 'rfc931'")]
    [InlineData("clientmethod: pam.address", "sockd.conf:2:15: unsupported method 'pam.address'")]
    [InlineData("clientmethod: username", "sockd.conf:2:15: unsupported clientmethod 'username': username is a socksmethod (client rules only see the address)")]
    [InlineData("method: username", "sockd.conf:2:1: 'method' is Dante 1.2 syntax: use socksmethod")]
    [InlineData("socksmethod: username", "sockd.conf:2:1: socksmethod username needs users.file or --users")]
    // Keywords
    [InlineData("bogus: 1", "sockd.conf:2:1: unknown keyword 'bogus'")]
    [InlineData("srchost: nodnsmismatch", "sockd.conf:2:1: unsupported keyword 'srchost'")]
    [InlineData("compatibility: sameport", "sockd.conf:2:1: unsupported keyword 'compatibility'")]
    [InlineData("extension: bind", "sockd.conf:2:1: unsupported keyword 'extension'")]
    [InlineData("child.maxidle: yes", "sockd.conf:2:1: unsupported keyword 'child.maxidle'")]
    [InlineData("timeout.tcp_fin_wait: 30", "sockd.conf:2:1: unsupported keyword 'timeout.tcp_fin_wait'")]
    [InlineData("socket.recvbuf.udp: 1000", "sockd.conf:2:1: unsupported keyword 'socket.recvbuf.udp'")]
    [InlineData("cpu.schedule.mother: SCHED_FIFO/20", "sockd.conf:2:1: unsupported keyword 'cpu.schedule.mother'")]
    [InlineData("user.libwrap: nobody", "sockd.conf:2:1: unsupported keyword 'user.libwrap'")]
    [InlineData("route { from: 0/0 to: 0/0 via: 10.0.0.1 port = 1080 }", "sockd.conf:2:1: unsupported keyword 'route'")]
    [InlineData("iotimeout: 10", "sockd.conf:2:1: 'iotimeout' is Dante 1.2 syntax: use timeout.io")]
    [InlineData("workers: four", "sockd.conf:2:10: bad number of workers 'four'")]
    [InlineData("workers: 0", "sockd.conf:2:1: workers must be between 1 and 64")]
    [InlineData("metrics: 127.0.0.1", "sockd.conf:2:1: expected 'metrics: ADDR port = N'")]
    [InlineData("metrics: eth0 port = 9100", "sockd.conf:2:10: metrics: 'eth0' is not an address")]
    [InlineData("from: 0/0", "sockd.conf:2:1: 'from' belongs inside a client or socks rule")]
    [InlineData("debug: 1 garbage", "sockd.conf:2:10: 'debug' takes one value; unexpected 'garbage'")]
    [InlineData("pass { from: 0/0 to: 0/0 }", "sockd.conf:2:1: 'pass {' is Dante 1.2 syntax: write 'socks pass {' (or 'client pass {')")]
    [InlineData("socks allow { from: 0/0 to: 0/0 }", "sockd.conf:2:7: expected 'pass' or 'block' after 'socks'")]
    [InlineData("}", "sockd.conf:2:1: unexpected '}'")]
    // Values
    [InlineData("debug: 3", "sockd.conf:2:8: bad debug level '3': expected 0, 1 or 2")]
    [InlineData("debug:", "sockd.conf:2:1: missing value for 'debug'")]
    [InlineData("debug: 1 2", "sockd.conf:2:10: 'debug' takes one value; unexpected '2'")]
    [InlineData("timeout.io: -1", "sockd.conf:2:13: timeout.io: negative duration '-1'")]
    [InlineData("timeout.io: soon", "sockd.conf:2:13: timeout.io: bad duration 'soon': expected whole seconds")]
    [InlineData("timeout.negotiate: 0", "sockd.conf:2:1: timeout.negotiate must be at least 1 second")]
    [InlineData("timeout.connect: 99999999", "sockd.conf:2:18: timeout.connect: duration 99999999 s is too long (at most 2147483 s)")]
    [InlineData("timeout.io.tcp: 10\ntimeout.io.udp: 20", "sockd.conf:3:1: l2proxy has one io timeout: 'timeout.io.udp: 20' differs from the 10 s given before")]
    [InlineData("external.rotation: random", "sockd.conf:2:20: bad external.rotation 'random': expected none, route or same-same")]
    [InlineData("internal: 10.0.0.1 port = 70000", "sockd.conf:2:27: bad port '70000' (0..65535)")]
    [InlineData("internal: 10.0.0.1 port = 0", "sockd.conf:2:27: port 0 is not allowed here (1..65535)")]
    [InlineData("internal: 10.0.0.1 port =", "sockd.conf:2:20: missing port number after 'port ='")]
    [InlineData("internal: averyveryverylongname0", "sockd.conf:2:11: 'averyveryverylongname0' is neither an address nor an interface name")]
    [InlineData("external: 10.0.0.1 port = 1", "sockd.conf:2:20: external takes no port: the kernel picks the source port")]
    [InlineData("logoutput: relative.log", "sockd.conf:2:12: bad log target 'relative.log': expected stderr, stdout, syslog, syslog/FACILITY or an absolute path")]
    [InlineData("errorlog: syslog/nosuch", "sockd.conf:2:11: unknown syslog facility 'nosuch'")]
    [InlineData("udp.portrange: 2000-1000", "sockd.conf:2:16: bad port range '2000-1000': 2000 is above 1000")]
    [InlineData("udp.portrange: 0-1000", "sockd.conf:2:16: bad port range '0-1000': port 0 is not allowed here (1..65535)")]
    [InlineData("udp.portrange: 1000", "sockd.conf:2:16: bad port range '1000': expected LO-HI")]
    [InlineData("user.privileged: a:b", "sockd.conf:2:18: bad user name 'a:b'")]
    public void Parse_BadTopLevelLine_GivesExactError(string line, string expected)
    {
        Assert.Equal(expected, OneError("internal: 127.0.0.1\n" + line + Rules));
    }

    [Theory]
    [InlineData("client pass {\n from: 0/0 to: 0/0\n gssapi.keytab: sockd.keytab\n}", "sockd.conf:4:17: gssapi.keytab 'sockd.keytab' must be an absolute path")]
    [InlineData("client pass {\n from: 0/0 to: 0/0\n gssapi.enctype: strong\n}", "sockd.conf:4:18: unknown gssapi.enctype 'strong' (expected clear, integrity, confidentiality, per-message)")]
    [InlineData("client pass {\n from: 0/0 to: 0/0\n gssapi.servicename: a b\n}", "sockd.conf:4:2: 'gssapi.servicename' takes one value")]
    [InlineData("client pass { from: 0/0 to: 0/0 clientcompatibility: nec }", "sockd.conf:2:54: unknown clientcompatibility 'nec' (expected necgssapi)")]
    [InlineData("client pass { from: 0/0 to: 0/0 gssapi.enctype: clear gssapi.enctype: clear }", "sockd.conf:2:55: 'gssapi.enctype' given twice in client rule")]
    [InlineData("client pass { from: 0/0 to: 0/0 gssapi.unknown: x }", "sockd.conf:2:33: unsupported keyword 'gssapi.unknown' in client rule")]
    [InlineData("socks pass {\n from: 0/0 to: 0/0\n gssapi.keytab: /etc/sockd.keytab\n}", "sockd.conf:4:2: 'gssapi.keytab' is not allowed in a socks rule: put it in the client rule (l2proxy establishes the GSS-API context before the request)")]
    [InlineData("socks pass { from: 0/0 to: 0/0 libwrap: x }", "sockd.conf:2:32: unsupported keyword 'libwrap' in socks rule")]
    [InlineData("socks pass { from: 0/0 to: 0/0 bandwidth: 10000 }", "sockd.conf:2:32: unsupported keyword 'bandwidth' in socks rule")]
    [InlineData("socks pass { from: 0/0 to: 0/0 redirect from: 10.0.0.1 }", "sockd.conf:2:32: unsupported keyword 'redirect' in socks rule")]
    [InlineData("socks pass { from: 0/0 to: 0/0 session.max: 10 }", "sockd.conf:2:32: unsupported keyword 'session.max' in socks rule")]
    [InlineData("socks pass { from: 0/0 to: 0/0 clientcompatibility: necgssapi }", "sockd.conf:2:32: 'clientcompatibility' is not allowed in a socks rule: put it in the client rule (l2proxy establishes the GSS-API context before the request)")]
    [InlineData("socks pass { from: 0/0 to: 0/0 frobnicate: 1 }", "sockd.conf:2:32: unknown keyword 'frobnicate' in socks rule")]
    [InlineData("client pass { from: 0/0 to: 0/0 command: connect }", "sockd.conf:2:33: 'command' is not allowed in a client rule (only from, to and log; use a socks rule)")]
    [InlineData("client pass { from: 0/0 to: 0/0 log: everything }", "sockd.conf:2:38: unknown log value 'everything' (expected connect, disconnect, data, error, iooperation, tcpinfo)")]
    [InlineData("socks pass { from: 0/0 to: 0/0 command: fly }", "sockd.conf:2:41: unknown command 'fly' (expected connect, bind, udpassociate, bindreply, udpreply)")]
    [InlineData("socks pass { from: 0/0 to: 0/0 protocol: sctp }", "sockd.conf:2:42: unknown protocol value 'sctp' (expected tcp, udp)")]
    [InlineData("socks pass { from: 0/0 to: 0/0 socksmethod: gssapi }", "sockd.conf:2:1: socks rule #1: socksmethod 'gssapi' is not in the global socksmethod list")]
    [InlineData("socks pass { from: 0/0 to: 0/0 from: 0/0 }", "sockd.conf:2:32: 'from' given twice in socks rule")]
    [InlineData("socks pass { from: 0/0 }", "sockd.conf:2:1: socks rule needs both 'from:' and 'to:' (no 'to:')")]
    [InlineData("socks pass { to: 0/0 }", "sockd.conf:2:1: socks rule needs both 'from:' and 'to:' (no 'from:')")]
    [InlineData("socks pass { from: 0/0 to: 0/0", "sockd.conf:2:12: socks rule is not closed with '}'")]
    [InlineData("socks pass { from: 300.1.1.1 to: 0/0 }", "sockd.conf:2:20: '300.1.1.1' is not an address or network")]
    [InlineData("socks pass { from: 10.0.0.0/33 to: 0/0 }", "sockd.conf:2:20: bad prefix length or netmask '33' in '10.0.0.0/33' (0..32)")]
    [InlineData("socks pass { from: 10.0.0.0/255.0.255.0 to: 0/0 }", "sockd.conf:2:20: bad prefix length or netmask '255.0.255.0' in '10.0.0.0/255.0.255.0' (0..32)")]
    [InlineData("socks pass { from: bad_domain!x to: 0/0 }", "sockd.conf:2:30: unexpected '!' after the address in 'from:'")]
    [InlineData("socks pass { from: 0/0 to: 0/0 port }", "sockd.conf:2:32: missing port after 'port'")]
    [InlineData("socks pass { from: 0/0 to: 0/0 port >= }", "sockd.conf:2:37: missing port number after '>='")]
    [InlineData("socks pass { from: 0/0 to: 0/0 port 2000-1000 }", "sockd.conf:2:37: bad port range '2000-1000': 2000 is above 1000")]
    [InlineData("socks pass { from: 0/0 to: 0/0 port 99999 }", "sockd.conf:2:37: bad port '99999' (0..65535)")]
    [InlineData("socks pass { from: 0/0 to: 0/0 udp.portrange: 9-1 }", "sockd.conf:2:47: bad port range '9-1': 9 is above 1")]
    [InlineData("socks pass { from: 0/0 to: 0/0 extra }", "sockd.conf:2:32: unexpected 'extra' after the address in 'to:'")]
    [InlineData("socks pass { from: 0/0 to: 0/0 socksmethod: username }", "sockd.conf:2:1: socks rule #1: socksmethod 'username' is not in the global socksmethod list")]
    public void Parse_BadRule_GivesExactError(string rule, string expected)
    {
        string text = "internal: 127.0.0.1\n" + rule;
        if (rule.EndsWith('}'))
        {
            text += "\nclient pass { from: 0/0 to: 0/0 }\nsocks pass { from: 0/0 to: 0/0 }";
        }

        Assert.Equal(expected, OneError(text));
    }

    [Fact]
    public void Parse_DanteRedundancyGssapiRule_KeepsKeytabServiceAndLevels()
    {
        var options = Ok("""
            internal: 127.0.0.1
            socksmethod: gssapi username
            users.file: /etc/l2proxy/users
            client pass {
              from: 198.18.0.0/15 to: 0/0
              gssapi.servicename: socks/vip.l2lab.test
              gssapi.keytab: FILE:/etc/l2proxy/socks.keytab
              gssapi.enctype: clear integrity confidentiality per-message
              clientcompatibility: necgssapi
            }
            socks pass { from: 0/0 to: 0/0 socksmethod: gssapi user: alice@L2LAB.TEST }
            """);
        Assert.Equal([MethodKind.Gssapi, MethodKind.Username], options.SocksMethods);
        var gssapi = options.ClientRules[0].Gssapi!;
        Assert.Equal("/etc/l2proxy/socks.keytab", gssapi.Keytab);
        Assert.Equal("socks/vip.l2lab.test", gssapi.ServiceName);
        Assert.True(gssapi.NecCompatibility);
        Assert.Equal(
            [GssapiProtection.Clear, GssapiProtection.Integrity, GssapiProtection.Confidentiality, GssapiProtection.PerMessage],
            gssapi.EncTypes!.Order());
        Assert.Equal(["alice@L2LAB.TEST"], options.SocksRules[0].Users!);
    }

    [Fact]
    public void Parse_ClientRuleWithoutGssapiKeywords_HasNoGssapiSettings() =>
        Assert.Null(Ok("internal: 127.0.0.1\nsocksmethod: gssapi" + Rules).ClientRules[0].Gssapi);

    [Fact]
    public void Parse_SeveralErrors_AreCollectedInOrder()
    {
        var result = SockdConfParser.Parse("""
            debug: 9
            bogus: 1
            socksmethod: bsdauth
            client pass {
              from: 0/0 to: 0/0
              libwrap: /k
            }
            """, File);
        Assert.Null(result.Options);
        Assert.Equal(
            [
                "sockd.conf:1:8: bad debug level '9': expected 0, 1 or 2",
                "sockd.conf:2:1: unknown keyword 'bogus'",
                "sockd.conf:3:14: unsupported method 'bsdauth'",
                "sockd.conf:6:3: unsupported keyword 'libwrap' in client rule",
                "sockd.conf: no internal address to listen on (internal: or --listen)",
            ],
            result.Errors.Select(e => e.ToString()).OrderBy(e => e.Contains(": no internal", StringComparison.Ordinal)));
    }

    [Fact]
    public void Parse_CompactSpelling_IsAccepted()
    {
        var options = Ok("internal:127.0.0.1 port=1080\nclient pass{from:0/0 to:0/0}\nsocks block{from:10.0.0.0/8 port>=1024 to:.example.com}socks pass{from:0/0 to:::/0}");
        Assert.Equal(1080, options.Internal[0].Port);
        Assert.Equal(new PortMatcher(PortOperator.Ge, 1024), options.SocksRules[0].From.Port);
        Assert.Equal(".example.com", options.SocksRules[0].To.Domain);
        Assert.Equal(IPAddress.IPv6Any, options.SocksRules[1].To.Network);
    }

    [Fact]
    public void Parse_RepeatedSetting_WarnsAndLastWins()
    {
        var result = SockdConfParser.Parse("internal: 127.0.0.1\ndebug: 1\ndebug: 2" + Rules, File);
        Assert.Equal(2, result.Options!.Debug);
        Assert.Equal(["sockd.conf:3:1: 'debug' given again; this later value replaces the earlier one"], result.Warnings);
    }

    [Fact]
    public void Parse_StrayWordAtTheStart_IsAnUnknownKeyword()
    {
        Assert.Equal("sockd.conf:1:1: unknown keyword 'garbage'", OneError("garbage\ninternal: 127.0.0.1" + Rules));
    }

    [Fact]
    public void ConfigError_ToString_IsFileLineColumnMessage()
    {
        Assert.Equal("a.conf:3:7: boom", new ConfigError("a.conf", 3, 7, "boom").ToString());
        Assert.Equal("a.conf: boom", new ConfigError("a.conf", 0, 0, "boom").ToString());
    }

    [Fact]
    public void Parse_RandomGarbage_NeverThrows()
    {
        var random = new Random(20261125);
        string[] pieces =
        [
            "internal:", "external:", "client", "socks", "pass", "block", "{", "}", "from:", "to:", "port", "=", "!=", ">=", "<",
            "0/0", "::/0", "10.0.0.0/8", "1080", "1-1024", "-", ":", "::", "#", "\n", " ", "\t", "log:", "connect", "udp.portrange:",
            "socksmethod:", "username", "none", "gssapi", "timeout.io:", "-1", "99999999999999999999", ".example.com", "eth0",
            "debug:", "user:", "command:", "protocol:", "tcp", "\0", "\u00e9", "\r\n", "fe80::1", "a:", ":b", "a:b:c", "[", "]",
        ];
        for (int i = 0; i < 5000; i++)
        {
            string text;
            if (i % 2 == 0)
            {
                int count = random.Next(0, 40);
                text = string.Join(random.Next(3) == 0 ? "" : " ", Enumerable.Range(0, count).Select(_ => pieces[random.Next(pieces.Length)]));
            }
            else
            {
                byte[] bytes = new byte[random.Next(0, 200)];
                random.NextBytes(bytes);
                text = System.Text.Encoding.Latin1.GetString(bytes);
            }

            var result = SockdConfParser.Parse(text, File);
            Assert.True(result.Options is null == result.Errors.Count > 0, text);
        }
    }
}
