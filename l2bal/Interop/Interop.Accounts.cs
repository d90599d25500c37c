using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace L2Balance.Balancer;

internal static partial class Interop
{
    /// <summary>
    /// Users, groups and file ownership: what the control socket's credential checks and the key
    /// file's checks need and .NET does not expose (pwd.h, grp.h, sys/stat.h, unistd.h, socket(7)).
    /// Layouts are checked against C in tests/L2Balance.L2Bal.Tests/Interop/AccountLayoutTests.cs.
    /// </summary>
    internal static partial class Accounts
    {
        /// <summary>asm-generic/socket.h: option level and the peer's credentials of a unix socket (struct ucred, then its supplementary groups).</summary>
        internal const int SOL_SOCKET = 1;
        internal const int SO_PEERCRED = 17;
        internal const int SO_PEERGROUPS = 59;

        /// <summary>errno.h: the buffer given to a getpwnam_r-style lookup is too small.</summary>
        internal const int ERANGE = 34;

        /// <summary>sizeof(struct ucred): pid, uid, gid, 4 bytes each.</summary>
        internal const int SizeOfUcred = 12;

        /// <summary>fcntl.h: statx(2) on the descriptor itself, and the fields asked for.</summary>
        internal const int AT_EMPTY_PATH = 0x1000;
        internal const uint STATX_BASIC_STATS = 0x7ff;

        /// <summary>The head of struct statx (linux/stat.h, the same on every architecture); the kernel writes 256 bytes.</summary>
        [StructLayout(LayoutKind.Sequential, Size = 256)]
        internal struct Statx
        {
            public uint stx_mask;
            public uint stx_blksize;
            public ulong stx_attributes;
            public uint stx_nlink;
            public uint stx_uid;
            public uint stx_gid;
            public ushort stx_mode;
        }

        /// <summary>struct passwd (pwd.h) on 64-bit Linux.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct Passwd
        {
            public nint pw_name;
            public nint pw_passwd;
            public uint pw_uid;
            public uint pw_gid;
            public nint pw_gecos;
            public nint pw_dir;
            public nint pw_shell;
        }

        /// <summary>struct group (grp.h) on 64-bit Linux.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct Group
        {
            public nint gr_name;
            public nint gr_passwd;
            public uint gr_gid;
            public nint gr_mem;
        }

        [LibraryImport(Libraries.Libc, EntryPoint = "geteuid")]
        internal static partial uint geteuid();

        [LibraryImport(Libraries.Libc, EntryPoint = "getegid")]
        internal static partial uint getegid();

        /// <summary>getpwnam_r(3): 0 with a null result when there is no such user; an errno value otherwise (ERANGE: a larger buffer).</summary>
        [LibraryImport(Libraries.Libc, EntryPoint = "getpwnam_r", StringMarshalling = StringMarshalling.Utf8)]
        internal static unsafe partial int getpwnam_r(string name, Passwd* pwd, byte* buf, nuint buflen, Passwd** result);

        /// <summary>getgrnam_r(3), as <see cref="getpwnam_r"/>.</summary>
        [LibraryImport(Libraries.Libc, EntryPoint = "getgrnam_r", StringMarshalling = StringMarshalling.Utf8)]
        internal static unsafe partial int getgrnam_r(string name, Group* grp, byte* buf, nuint buflen, Group** result);

        /// <summary>getgrgid_r(3), as <see cref="getpwnam_r"/>.</summary>
        [LibraryImport(Libraries.Libc, EntryPoint = "getgrgid_r")]
        internal static unsafe partial int getgrgid_r(uint gid, Group* grp, byte* buf, nuint buflen, Group** result);

        /// <summary>statx(2) with <see cref="AT_EMPTY_PATH"/> and an empty path: the open file itself, so no later rename can swap it.</summary>
        [LibraryImport(Libraries.Libc, EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        internal static partial int statx(SafeFileHandle dirfd, string pathname, int flags, uint mask, out Statx statxbuf);

        /// <summary>fchown(2): owner and group of an open file (uint.MaxValue leaves one as it is).</summary>
        [LibraryImport(Libraries.Libc, EntryPoint = "fchown", SetLastError = true)]
        internal static partial int fchown(SafeFileHandle fd, uint owner, uint group);
    }
}
