using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace L2Balance.Lab.Tests.Net;

/// <summary>
/// Runs l2bal code on a dedicated thread that entered a lab namespace with setns(2), as the daemon
/// would run inside its node: sockets opened there stay in that namespace and work from any thread;
/// /proc/sys/net is resolved per thread.
/// </summary>
internal static partial class InNamespace
{
    private const int CLONE_NEWNET = 0x40000000;

    public static T Run<T>(LabHost host, Func<T> action)
    {
        T? result = default;
        ExceptionDispatchInfo? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var target = File.OpenHandle(host.NamespacePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                if (setns(target, CLONE_NEWNET) != 0)
                {
                    throw new InvalidOperationException($"setns({host.Namespace}): errno {Marshal.GetLastPInvokeError()}");
                }

                // The thread ends here: it never returns to the pool in the wrong namespace.
                result = action();
            }
            catch (Exception ex)
            {
                failure = ExceptionDispatchInfo.Capture(ex);
            }
        })
        {
            IsBackground = true,
            Name = "l2bal-test-setns",
        };
        thread.Start();
        if (!thread.Join(TimeSpan.FromSeconds(20)))
        {
            throw new TimeoutException($"action in {host.Namespace} did not finish within 20 s");
        }

        failure?.Throw();
        return result!;
    }

    public static void Run(LabHost host, Action action) => Run(host, () =>
    {
        action();
        return 0;
    });

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int setns(SafeFileHandle fd, int nstype);
}
