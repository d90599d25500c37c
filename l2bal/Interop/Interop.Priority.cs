using System.Runtime.InteropServices;

namespace L2Balance.Balancer;

internal static partial class Interop
{
    /// <summary>setpriority(2) on one thread: on Linux PRIO_PROCESS with a thread id applies to that thread only.</summary>
    internal static partial class Priority
    {
        /// <summary>sys/resource.h: PRIO_PROCESS.</summary>
        internal const int PRIO_PROCESS = 0;

        [LibraryImport(Libraries.Libc, EntryPoint = "setpriority", SetLastError = true)]
        internal static partial int setpriority(int which, uint who, int prio);
    }
}
