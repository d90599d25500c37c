using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace L2Balance.Balancer.Kernel;

/// <summary>
/// One dedicated thread that runs every call of a component, optionally inside a network
/// namespace it entered once with setns(2).
/// </summary>
/// <remarks>
/// A netlink socket is bound to the namespace of the thread that opens it, and libnftables may
/// (re)open its socket during a call; /proc/thread-self/net is the calling thread's namespace. Keeping
/// all of them on one thread keeps them in one namespace, and serializes use of an nft_ctx, which is
/// not thread-safe. The daemon itself runs inside the node's namespace and passes no path.
/// </remarks>
internal sealed class NamespaceWorker : IDisposable
{
    private readonly BlockingCollection<Action> _queue = new();
    private readonly Lock _inline = new();
    private readonly Thread _thread;
    private readonly string? _namespacePath;
    private Exception? _startFailure;

    /// <summary>Starts the thread, entering <paramref name="namespacePath"/> (e.g. /var/run/netns/NS) if given.</summary>
    public NamespaceWorker(string name, string? namespacePath)
    {
        _namespacePath = namespacePath;
        using var started = new ManualResetEventSlim();
        _thread = new Thread(() => Loop(started)) { IsBackground = true, Name = name };
        _thread.Start();
        started.Wait();
        if (_startFailure is not null)
        {
            _thread.Join();
            throw _startFailure;
        }
    }

    /// <summary>Runs <paramref name="action"/> on the worker thread and returns its result (or rethrows its exception).</summary>
    public T Invoke<T>(Func<T> action)
    {
        ObjectDisposedException.ThrowIf(_queue.IsAddingCompleted, this);
        if (_namespacePath is null)
        {
            // Already in the right namespace (the daemon runs inside its node's): run on the
            // caller's thread, serialized: the hop to the worker thread spin-waited for nothing
            // (docs/benchmarks.md#l2bal-idle-cpu).
            lock (_inline)
            {
                return action();
            }
        }

        T? result = default;
        ExceptionDispatchInfo? failure = null;
        using var done = new ManualResetEventSlim(false, spinCount: 1);
        _queue.Add(() =>
        {
            try
            {
                result = action();
            }
            catch (Exception ex)
            {
                failure = ExceptionDispatchInfo.Capture(ex);
            }
            finally
            {
                done.Set();
            }
        });
        done.Wait();
        failure?.Throw();
        return result!;
    }

    /// <summary>Finishes queued work and ends the thread (which ends with it, in its namespace).</summary>
    public void Dispose()
    {
        if (!_queue.IsAddingCompleted)
        {
            _queue.CompleteAdding();
            _thread.Join();
            _queue.Dispose();
        }
    }

    private void Loop(ManualResetEventSlim started)
    {
        try
        {
            if (_namespacePath is not null)
            {
                EnterNamespace(_namespacePath);
            }
        }
        catch (Exception ex)
        {
            _startFailure = ex;
            _queue.CompleteAdding();
            started.Set();
            return;
        }

        started.Set();
        foreach (var work in _queue.GetConsumingEnumerable())
        {
            work();
        }
    }

    private static void EnterNamespace(string path)
    {
        using SafeFileHandle fd = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        if (Interop.Sys.setns(fd, Interop.Sys.CLONE_NEWNET) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new KernelFilterException($"setns({path}, CLONE_NEWNET): {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
        }
    }
}
