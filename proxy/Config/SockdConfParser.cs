using L2Balance.Proxy.Rules;

namespace L2Balance.Proxy.Config;

/// <summary>
/// Reads a Dante 1.4 <c>sockd.conf</c> into <see cref="ProxyOptions"/>. Every keyword is either
/// supported, refused as unsupported by name, or refused as unknown; nothing is silently ignored
/// (STYLE 18). All errors are collected with their <c>file:line:column</c>.
/// </summary>
/// <remarks>
/// Supported at top level: <c>internal</c>, <c>external</c>, <c>external.rotation</c>,
/// <c>clientmethod</c> (none), <c>socksmethod</c> (none, username), <c>user.privileged</c>,
/// <c>user.unprivileged</c>/<c>user.notprivileged</c>, <c>timeout.negotiate</c>, <c>timeout.io</c>
/// (<c>.tcp</c>, <c>.udp</c>), <c>timeout.connect</c>, <c>logoutput</c>, <c>errorlog</c>, <c>debug</c>,
/// and the l2proxy extensions <c>udp.portrange</c> and <c>users.file</c>; rule blocks
/// <c>client pass|block {}</c> and <c>socks pass|block {}</c>.
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
