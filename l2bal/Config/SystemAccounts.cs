using System.Runtime.InteropServices;
using static L2Balance.Balancer.Interop.Accounts;

namespace L2Balance.Balancer.Config;

/// <summary>
/// Users and groups by name, through the C library (so NSS sources such as LDAP count as
/// /etc/group does), and this process's effective ids.
/// </summary>
internal static class SystemAccounts
{
    /// <summary>The user and group the package runs l2bal as (docs/design.md#control-and-status).</summary>
    public const string DaemonAccount = "l2bal";

    /// <summary>NGROUPS_MAX-sized lookups never need more; a name service that answers ERANGE beyond it is refused.</summary>
    private const int MaxBuffer = 1 << 20;

    public static uint EffectiveUserId => geteuid();

    public static uint EffectiveGroupId => getegid();

    /// <summary>The id of user <paramref name="name"/>, or null when there is none.</summary>
    public static unsafe uint? UserId(string name) => Lookup(name, static (n, buf, len) =>
    {
        Passwd entry;
        Passwd* result;
        var rc = getpwnam_r(n, &entry, buf, len, &result);
        return (rc, result == null ? null : (uint?)entry.pw_uid);
    });

    /// <summary>The id of group <paramref name="name"/>, or null when there is none.</summary>
    public static unsafe uint? GroupId(string name) => Lookup(name, static (n, buf, len) =>
    {
        Group entry;
        Group* result;
        var rc = getgrnam_r(n, &entry, buf, len, &result);
        return (rc, result == null ? null : (uint?)entry.gr_gid);
    });

    /// <summary>The name of group <paramref name="gid"/>, or its number when it has none.</summary>
    public static unsafe string GroupName(uint gid)
    {
        var name = Lookup(gid, static (id, buf, len) =>
        {
            Group entry;
            Group* result;
            var rc = getgrgid_r(id, &entry, buf, len, &result);
            return (rc, result == null ? null : Marshal.PtrToStringUTF8(entry.gr_name));
        });
        return name ?? gid.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    private unsafe delegate (int Rc, T Value) Query<TKey, T>(TKey key, byte* buffer, nuint length);

    private static unsafe T? Lookup<TKey, T>(TKey key, Query<TKey, T> query)
    {
        for (var size = 1024; size <= MaxBuffer; size *= 4)
        {
            var buffer = new byte[size];
            fixed (byte* b = buffer)
            {
                var (rc, value) = query(key, b, (nuint)size);
                if (rc != ERANGE)
                {
                    // ENOENT, ESRCH and friends: the name services say "no such entry" in more than one way.
                    return rc == 0 ? value : default;
                }
            }
        }
        return default;
    }
}
