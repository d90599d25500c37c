using System.Runtime.InteropServices;

namespace L2Balance.Proxy.Interop;

internal static partial class Interop
{
    /// <summary>kill(2) and getppid(2) for the supervisor and its workers.</summary>
    internal static partial class Process
    {
        internal const int SIGHUP = 1;
        internal const int SIGKILL = 9;
        internal const int SIGTERM = 15;

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int kill(int pid, int sig);

        [LibraryImport(Libraries.Libc)]
        internal static partial int getppid();
    }
}
