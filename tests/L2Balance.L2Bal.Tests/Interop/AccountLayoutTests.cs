using L2Balance.Tests.Common;
using Xunit;
using static System.Runtime.InteropServices.Marshal;
using static L2Balance.Balancer.Interop.Accounts;

namespace L2Balance.L2Bal.Tests.Interop;

/// <summary>
/// The layouts and constants of the credential and key-file checks (struct ucred, statx, passwd,
/// group), checked against the system headers by compiling a tiny C program (docs/conventions.md §11).
/// </summary>
public sealed class AccountLayoutTests
{
    private const string Program = """
        #define _GNU_SOURCE
        #include <stdio.h>
        #include <stddef.h>
        #include <errno.h>
        #include <fcntl.h>
        #include <grp.h>
        #include <pwd.h>
        #include <sys/socket.h>
        #include <sys/stat.h>
        #define P(name, value) printf("%s %ld\n", name, (long)(value))
        int main(void) {
            P("SOL_SOCKET", SOL_SOCKET);
            P("SO_PEERCRED", SO_PEERCRED);
            P("SO_PEERGROUPS", SO_PEERGROUPS);
            P("sizeof(ucred)", sizeof(struct ucred));
            P("ERANGE", ERANGE);
            P("AT_EMPTY_PATH", AT_EMPTY_PATH);
            P("STATX_BASIC_STATS", STATX_BASIC_STATS);
            P("sizeof(statx)", sizeof(struct statx));
            P("offsetof(statx.stx_uid)", offsetof(struct statx, stx_uid));
            P("offsetof(statx.stx_gid)", offsetof(struct statx, stx_gid));
            P("offsetof(statx.stx_mode)", offsetof(struct statx, stx_mode));
            P("sizeof(passwd)", sizeof(struct passwd));
            P("offsetof(passwd.pw_uid)", offsetof(struct passwd, pw_uid));
            P("sizeof(group)", sizeof(struct group));
            P("offsetof(group.gr_gid)", offsetof(struct group, gr_gid));
            return 0;
        }
        """;

    private static readonly Lazy<Dictionary<string, long>> Native = new(() => NativeProgram.CompileAndRun(Program, "l2bal-accounts-"));

    public static TheoryData<string, long> Expected => new()
    {
        { "SOL_SOCKET", SOL_SOCKET },
        { "SO_PEERCRED", SO_PEERCRED },
        { "SO_PEERGROUPS", SO_PEERGROUPS },
        { "sizeof(ucred)", SizeOfUcred },
        { "ERANGE", ERANGE },
        { "AT_EMPTY_PATH", AT_EMPTY_PATH },
        { "STATX_BASIC_STATS", STATX_BASIC_STATS },
        { "sizeof(statx)", SizeOf<Statx>() },
        { "offsetof(statx.stx_uid)", Offset<Statx>(nameof(Statx.stx_uid)) },
        { "offsetof(statx.stx_gid)", Offset<Statx>(nameof(Statx.stx_gid)) },
        { "offsetof(statx.stx_mode)", Offset<Statx>(nameof(Statx.stx_mode)) },
        { "sizeof(passwd)", SizeOf<Passwd>() },
        { "offsetof(passwd.pw_uid)", Offset<Passwd>(nameof(Passwd.pw_uid)) },
        { "sizeof(group)", SizeOf<Group>() },
        { "offsetof(group.gr_gid)", Offset<Group>(nameof(Group.gr_gid)) },
    };

    private static long Offset<T>(string field) => (long)System.Runtime.InteropServices.Marshal.OffsetOf<T>(field);

    [SkippableTheory]
    [MemberData(nameof(Expected))]
    public void AccountConstant_ComparedWithSystemHeaders_IsEqual(string name, long managed)
    {
        Assert.True(Native.Value.TryGetValue(name, out long native), $"{name} not printed by the C program");
        Assert.Equal(native, managed);
    }
}
