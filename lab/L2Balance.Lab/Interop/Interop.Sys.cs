using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace L2Balance.Lab;

internal static partial class Interop
{
    internal static partial class Sys
    {
        /// <summary>linux/sched.h: the network namespace type for setns(2).</summary>
        internal const int CLONE_NEWNET = 0x40000000;

        internal const int SIGKILL = 9;
        internal const int SIGTERM = 15;

        /// <summary>setns(2): moves the calling thread into the namespace referred to by fd.</summary>
        [LibraryImport(Libraries.Libc, EntryPoint = "setns", SetLastError = true)]
        internal static partial int setns(SafeFileHandle fd, int nstype);

        /// <summary>kill(2).</summary>
        [LibraryImport(Libraries.Libc, EntryPoint = "kill", SetLastError = true)]
        internal static partial int kill(int pid, int sig);

        /// <summary>gettid(2): the kernel id of the calling thread.</summary>
        [LibraryImport(Libraries.Libc, EntryPoint = "gettid")]
        internal static partial int gettid();
    }
}
