using L2Balance.Proxy.Config;
using L2Balance.Tests.Common;

namespace L2Balance.Fuzz.Targets.Proxy;

/// <summary>
/// Dante's sockd.conf as l2proxy reads it (<see cref="SockdConfParser.Parse"/>, then
/// <see cref="ConfigValidator.Validate"/> on what it accepts, as <c>--check-config</c> does). Every
/// problem must be an error with a position, never an exception.
/// </summary>
public sealed class SockdConfTarget : TextTarget<SockdConfTarget.Result>
{
    public override string Name => "sockd-conf";

    public override string Product => "proxy";

    public override string EntryPoint => "SockdConfParser.Parse + ConfigValidator.Validate";

    public override IReadOnlyList<byte[]> Seeds { get; } =
    [
        Utf8(DanteExamples.Redundancy),
        Utf8("""
            debug: 1
            timeout.connect: 30
            internal: 198.18.0.10 port = 1080   # the VIP
            internal: eth0 port=1081
            socksmethod: none username
            clientmethod: none
            user.unprivileged: nobody
            timeout.io.udp: 300
            external: eth1
            timeout.io.tcp: 300
            external.rotation: route
            user.privileged: proxy
            timeout.negotiate: 30
            users.file: /etc/l2proxy/users
            errorlog: syslog/daemon
            logoutput: stdout /var/log/l2proxy.log
            workers: 2
            metrics: ::1 port = 9180
            udp.portrange: 41000-41999
            client block { from: 198.18.0.66/32 to: 0/0 log: error }
            client pass { from: 198.18.0.0/15 port 1024 - 65535 to: 198.18.0.10/32 }
            socks pass {
                from: 198.18.0.0/15 to: 198.19.0.0/16 port >= 80
                protocol: udp tcp
                command: bind connect udpreply
                user: carol
                socksmethod: username none
                log: iooperation error
                udp.portrange: 42000-42010
            }
            socks block { from: ::/0 to: .internal.example port = 22 log: connect }
            """),
        Utf8("internal :\n 10.0.0.2\n port\n =\n 1086\nclient pass { from: 0/0 to: 0/0 }\nsocks pass { from: 0/0 to: 0/0 }\n"),
    ];

    public override IReadOnlyList<byte[]> Tokens { get; } =
    [
        .. new[]
        {
            "internal", "external", "external.rotation", "clientmethod", "socksmethod", "user.privileged", "user.unprivileged",
            "user.notprivileged", "timeout.negotiate", "timeout.io", "timeout.io.tcp", "timeout.io.udp", "timeout.connect", "logoutput",
            "errorlog", "debug", "udp.portrange", "users.file", "metrics", "workers", "client", "socks", "pass", "block", "from", "to",
            "port", "command", "protocol", "user", "log", "connect", "bind", "bindreply", "udpassociate", "udpreply", "tcp", "udp",
            "username", "none", "route", "same-same", "syslog", "stderr", "stdout", "error", "disconnect", "iooperation", "eq", "ne",
            "lt", "le", "gt", "ge", "range", "0/0", ":", "=", "{", "}", "-", "<", ">", "<=", ">=", "!=", "/", ".example.com", "fe80::1%eth0",
        }.Select(t => Utf8(" " + t + " ")),
    ];

    protected override Result Parse(string input)
    {
        var result = SockdConfParser.Parse(input, "fuzz.conf");
        return new Result(result, result.Succeeded ? ConfigValidator.Validate(result.Options!) : null);
    }

    protected override bool IsAccepted(Result result) => result.Parsed.Succeeded && result.Validation is { Errors.Count: 0 };

    protected override void Check(byte[] input, Result result)
    {
        var text = Decode(input);
        Require(result.Parsed.Succeeded == (result.Parsed.Errors.Count == 0), $"Succeeded {result.Parsed.Succeeded} with {result.Parsed.Errors.Count} errors");
        foreach (var error in result.Parsed.Errors)
        {
            RequireLine(text, error.Line, $"error '{error}'");
            Require(error.Column >= 0 && error.Message.Length > 0, $"error '{error}' has no column or message");
        }
    }

    public readonly record struct Result(ConfigResult Parsed, ConfigValidation? Validation);
}
