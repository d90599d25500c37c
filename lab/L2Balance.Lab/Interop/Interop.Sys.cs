using System.Runtime.InteropServices;

namespace L2Balance.Lab;

internal static partial class Interop
{
    internal static partial class Sys
    {
        internal const int SIGKILL = 9;
        internal const int SIGTERM = 15;

        /// <summary>kill(2).</summary>
        [LibraryImport(Libraries.Libc, EntryPoint = "kill", SetLastError = true)]
        internal static partial int kill(int pid, int sig);
    }
}
