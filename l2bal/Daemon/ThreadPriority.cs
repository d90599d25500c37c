using System.Globalization;
using System.Runtime.InteropServices;

namespace L2Balance.Balancer.Daemon;

/// <summary>
/// Raises the scheduling priority (nice −10) of every thread of the daemon. Advertisements must
/// leave and be read on time even when the node's CPUs are saturated by the service it
/// balances, or peers declare a busy node dead (keepalived does the same with its vrrp
/// priority settings). Threads the runtime starts later are caught by calling this again.
/// </summary>
internal static class ThreadPriority
{
    /// <summary>The nice value: far enough above ordinary work, below what the kernel's own helpers use.</summary>
    public const int Nice = -10;

    /// <summary>
    /// The loop thread's real-time priority (SCHED_RR): above every ordinary task, far below the
    /// kernel's interrupt threads (50). corosync runs its token thread the same way, keepalived
    /// offers it (vrrp_rt_priority); the loop sleeps in ppoll almost all the time.
    /// </summary>
    public const int RealTimePriority = 10;

    private static readonly HashSet<uint> Raised = [];

    /// <summary>Puts the calling thread under SCHED_RR at <see cref="RealTimePriority"/>; returns 0 or the errno.</summary>
    public static unsafe int MakeCurrentThreadRealTime()
    {
        var priority = RealTimePriority;
        return Interop.Priority.sched_setscheduler(0, Interop.Priority.SCHED_RR, &priority) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>
    /// Puts the calling thread back under SCHED_OTHER at <see cref="Nice"/>: a thread started from the real-time loop
    /// inherits SCHED_RR, which is for the loop's short waits, never for a thread that works for seconds. Returns 0 or the errno.
    /// </summary>
    public static unsafe int MakeCurrentThreadOrdinary()
    {
        var priority = 0;
        if (Interop.Priority.sched_setscheduler(0, Interop.Priority.SCHED_OTHER, &priority) != 0)
        {
            return Marshal.GetLastPInvokeError();
        }
        // PRIO_PROCESS with who 0 is the calling thread on Linux (setpriority(2), BUGS: per thread, not per process).
        return Interop.Priority.setpriority(Interop.Priority.PRIO_PROCESS, 0, Nice) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>Applies the priority to threads not raised yet; returns the errno of the first failure, 0 if none.</summary>
    public static int RaiseAll()
    {
        var firstError = 0;
        string[] tasks;
        try
        {
            tasks = Directory.GetDirectories("/proc/self/task");
        }
        catch (IOException)
        {
            return 0;
        }
        foreach (var task in tasks)
        {
            if (!uint.TryParse(Path.GetFileName(task), NumberStyles.None, CultureInfo.InvariantCulture, out var tid) || Raised.Contains(tid))
            {
                continue;
            }
            if (Interop.Priority.setpriority(Interop.Priority.PRIO_PROCESS, tid, Nice) == 0)
            {
                Raised.Add(tid);
            }
            else if (firstError == 0)
            {
                firstError = Marshal.GetLastPInvokeError();
                Raised.Add(tid);
            }
        }
        return firstError;
    }
}
