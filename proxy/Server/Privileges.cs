using System.Globalization;
using System.Runtime.InteropServices;
using L2Balance.Common.Linux;
using L2Balance.Proxy.Diagnostics;
using static L2Balance.Proxy.Interop.Interop;

namespace L2Balance.Proxy.Server;

/// <summary>
/// Dante's <c>user.unprivileged</c>: once the listening sockets are bound, the proxy gives up
/// root for the named user. Sockets it binds later (UDP relays, BIND) use ports above 1023.
/// </summary>
internal static class Privileges
{
    public static void DropTo(string? user, ProxyLog log)
    {
        if (user is null)
        {
            return;
        }
        var (uid, gid) = Lookup(user);
        if (Credentials.geteuid() != 0)
        {
            throw new InvalidOperationException($"user.unprivileged: {user}: only root can switch users");
        }
        Check(Credentials.setgroups(1, [gid]), "setgroups");
        Check(Credentials.setgid(gid), "setgid");
        Check(Credentials.setuid(uid), "setuid");
        log.PrivilegesDropped(user);
    }

    /// <summary>The uid of <paramref name="user"/> in /etc/passwd, or null when there is none.</summary>
    public static uint? UidOf(string user)
    {
        try
        {
            return Lookup(user).Uid;
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    private static (uint Uid, uint Gid) Lookup(string user)
    {
        foreach (var line in File.ReadLines("/etc/passwd"))
        {
            var fields = line.Split(':');
            if (fields.Length >= 4 && fields[0] == user)
            {
                return (uint.Parse(fields[2], CultureInfo.InvariantCulture), uint.Parse(fields[3], CultureInfo.InvariantCulture));
            }
        }
        throw new InvalidOperationException($"user.unprivileged: no user '{user}' in /etc/passwd");
    }

    private static void Check(int result, string call)
    {
        if (result != 0)
        {
            throw new InvalidOperationException($"{call}: {Errno.Name(Marshal.GetLastPInvokeError())}");
        }
    }
}
