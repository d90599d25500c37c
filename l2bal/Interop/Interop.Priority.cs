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

        /// <summary>sched.h: the ordinary time-sharing policy.</summary>
        internal const int SCHED_OTHER = 0;

        /// <summary>sched.h: round-robin real-time policy.</summary>
        internal const int SCHED_RR = 2;

        /// <summary>sched_setscheduler(2); pid 0 is the calling thread on Linux. <paramref name="priority"/> points at struct sched_param.</summary>
        [LibraryImport(Libraries.Libc, EntryPoint = "sched_setscheduler", SetLastError = true)]
        internal static unsafe partial int sched_setscheduler(int pid, int policy, int* priority);
    }
}
