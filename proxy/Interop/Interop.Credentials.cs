using System.Runtime.InteropServices;

namespace L2Balance.Proxy.Interop;

internal static partial class Interop
{
    /// <summary>setgid(2), setgroups(2), setuid(2). glibc applies them to every thread of the process.</summary>
    internal static partial class Credentials
    {
        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int setgid(uint gid);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int setuid(uint uid);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int setgroups(nuint size, uint[] list);

        [LibraryImport(Libraries.Libc)]
        internal static partial uint geteuid();
    }
}
