namespace L2Balance.Proxy.Config;

/// <summary>
/// Reads a Dante 1.4 <c>sockd.conf</c> into <see cref="ProxyOptions"/>. Every keyword is either
/// supported, refused as unsupported by name, or refused as unknown; nothing is silently ignored
/// (docs/conventions.md §18). All errors are collected with their <c>file:line:column</c>.
/// </summary>
/// <remarks>
/// Supported at top level: <c>internal</c>, <c>external</c>, <c>external.rotation</c>,
/// <c>clientmethod</c> (none), <c>socksmethod</c> (none, username), <c>user.privileged</c>,
/// <c>user.unprivileged</c>/<c>user.notprivileged</c>, <c>timeout.negotiate</c>, <c>timeout.io</c>
/// (<c>.tcp</c>, <c>.udp</c>), <c>timeout.connect</c>, <c>logoutput</c>, <c>errorlog</c>, <c>debug</c>,
/// and the l2proxy extensions below; rule blocks <c>client pass|block { from: to: log: }</c> and
/// <c>socks pass|block { from: to: command: protocol: socksmethod: user: udp.portrange: log: }</c>.
/// <para>l2proxy extensions (not in Dante):</para>
/// <list type="bullet">
/// <item><c>udp.portrange: LO-HI</c> at top level (Dante has it only inside socks rules): this node's
/// port slice for all UDP relay and BIND sockets (docs/design.md#port-slices) → <see cref="ProxyOptions.PortRange"/>.</item>
/// <item><c>users.file: PATH</c>: the users file of <c>l2proxy passwd</c> for <c>socksmethod: username</c>,
/// where Dante uses the system password database → <see cref="ProxyOptions.UsersFile"/>.</item>
/// <item><c>metrics: ADDR port = N</c>: serve Prometheus metrics there → <see cref="ProxyOptions.Metrics"/>.</item>
/// <item><c>workers: N</c>: N worker processes under a supervisor → <see cref="ProxyOptions.Workers"/>.</item>
/// </list>
/// <para>Divergences: <c>0/0</c> matches IPv4, IPv6 and names (as Dante); <c>timeout.negotiate</c> and
/// <c>timeout.connect</c> of 0 ("forever" in Dante) are refused; <c>timeout.io.tcp</c> and <c>timeout.io.udp</c>
/// must agree (one io timeout); a rule must have both <c>from:</c> and <c>to:</c>.</para>
/// </remarks>
public static class SockdConfParser
{
    public static ConfigResult Parse(string text, string fileName)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(fileName);
        return new SockdConfReader(text, fileName).Read();
    }
}
