using L2Balance.Common.Linux;

namespace L2Balance.Lab.Tests.Balancer.Net;

/// <summary>
/// Runs l2bal code on a dedicated thread that entered a lab namespace with setns(2), as the daemon
/// would run inside its node: sockets opened there stay in that namespace and work from any thread;
/// /proc/sys/net is resolved per thread.
/// </summary>
internal static class InNamespace
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    public static T Run<T>(LabHost host, Func<T> action)
    {
        var thread = new NamespaceThread(host.NamespacePath, "l2bal-test-setns");
        var work = thread.InvokeAsync(action);
        try
        {
            return work.WaitAsync(Deadline).GetAwaiter().GetResult();
        }
        catch (TimeoutException) when (!work.IsCompleted)
        {
            // The stuck thread is left behind (a background thread); disposing it would wait for it.
            throw new TimeoutException($"action in {host.Namespace} did not finish within {Deadline.TotalSeconds:0} s");
        }
        finally
        {
            if (work.IsCompleted)
            {
                thread.Dispose();
            }
        }
    }

    public static void Run(LabHost host, Action action) => Run(host, () =>
    {
        action();
        return 0;
    });
}
