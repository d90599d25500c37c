using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace L2Balance.Common.Linux;

/// <summary>
/// A dedicated thread that entered a network namespace once with setns(2) and runs work items
/// there, one at a time, in the order they were queued.
/// </summary>
/// <remarks>
/// <para>
/// A socket (netlink, packet, TCP) belongs to the namespace of the thread that creates it, for its
/// whole life, and can then be used from any thread; <c>/proc/thread-self/net</c> and libnftables'
/// netlink socket follow the calling thread's namespace too. Thread-pool threads must never change
/// namespace (the next work item would run in the wrong one), so the work runs on a thread of its
/// own, which ends with the namespace it entered when the instance is disposed.
/// </para>
/// <para>
/// Work items are serialised, so a resource that is not thread-safe (an nft_ctx) can be used from
/// several callers through one instance. An exception thrown by a work item is rethrown to its
/// caller with its original stack trace.
/// </para>
/// </remarks>
public sealed class NamespaceThread : IDisposable
{
    private readonly BlockingCollection<Action> _queue = new();
    private readonly Thread _thread;
    private ExceptionDispatchInfo? _startFailure;

    /// <summary>
    /// Starts the thread and enters <paramref name="namespacePath"/> (a namespace file such as
    /// <c>/var/run/netns/NAME</c> or <c>/proc/PID/ns/net</c>) on it before returning.
    /// </summary>
    /// <param name="namespacePath">The network namespace file to enter.</param>
    /// <param name="threadName">The thread's name, as debuggers and <c>/proc/PID/task/*/comm</c> show it.</param>
    /// <exception cref="IOException">
    /// The namespace file cannot be opened, or setns(2) refused it; the message names the path and
    /// the errno (<c>setns(/var/run/netns/a, CLONE_NEWNET): EPERM</c>).
    /// </exception>
    /// <exception cref="UnauthorizedAccessException">The namespace file may not be read.</exception>
    public NamespaceThread(string namespacePath, string threadName = "netns")
    {
        ArgumentException.ThrowIfNullOrEmpty(namespacePath);
        NamespacePath = namespacePath;
        using var started = new ManualResetEventSlim();
        _thread = new Thread(() => Loop(started)) { IsBackground = true, Name = threadName };
        _thread.Start();
        started.Wait();
        if (_startFailure is { } failure)
        {
            _thread.Join();
            _queue.Dispose();
            failure.Throw();
        }
    }

    /// <summary>The namespace file this thread entered.</summary>
    public string NamespacePath { get; }

    /// <summary>
    /// Runs <paramref name="work"/> once on a fresh thread in <paramref name="namespacePath"/> and
    /// returns its result (or rethrows its exception); the thread ends before this returns.
    /// </summary>
    /// <exception cref="IOException">The namespace cannot be entered (see the constructor).</exception>
    public static T Run<T>(string namespacePath, Func<T> work, string threadName = "netns")
    {
        using var thread = new NamespaceThread(namespacePath, threadName);
        return thread.Invoke(work);
    }

    /// <summary>
    /// Runs <paramref name="work"/> on the namespace thread after the work queued before it, waits
    /// for it and returns its result, or rethrows its exception with its original stack trace.
    /// Called from the namespace thread itself, it runs the work at once (no deadlock).
    /// </summary>
    /// <exception cref="ObjectDisposedException">The instance was disposed.</exception>
    public T Invoke<T>(Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (Thread.CurrentThread == _thread)
        {
            return work();
        }

        T? result = default;
        ExceptionDispatchInfo? failure = null;
        // No spinning before the wait blocks: a work item takes microseconds to milliseconds.
        using var done = new ManualResetEventSlim(false, spinCount: 1);
        Enqueue(() =>
        {
            try
            {
                result = work();
            }
            catch (Exception e)
            {
                failure = ExceptionDispatchInfo.Capture(e);
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

    /// <summary>Runs <paramref name="work"/> on the namespace thread and waits for it (see <see cref="Invoke{T}(Func{T})"/>).</summary>
    public void Invoke(Action work)
    {
        ArgumentNullException.ThrowIfNull(work);
        Invoke(() =>
        {
            work();
            return true;
        });
    }

    /// <summary>
    /// Queues <paramref name="work"/> on the namespace thread without waiting: for long-running work
    /// (a producer loop) or a caller that waits with a timeout. The task's continuations never run
    /// on the namespace thread; a failure is the task's exception.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The instance was disposed.</exception>
    public Task<T> InvokeAsync<T>(Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Enqueue(() =>
        {
            try
            {
                completion.SetResult(work());
            }
            catch (Exception e)
            {
                completion.SetException(e);
            }
        });
        return completion.Task;
    }

    /// <summary>
    /// Lets the queued work finish, then ends the thread (and with it, its hold on the namespace).
    /// Waits for that unless called from the namespace thread itself.
    /// </summary>
    public void Dispose()
    {
        if (_queue.IsAddingCompleted)
        {
            return;
        }

        _queue.CompleteAdding();
        if (Thread.CurrentThread != _thread)
        {
            _thread.Join();
            _queue.Dispose();
        }
    }

    private void Enqueue(Action item)
    {
        try
        {
            _queue.Add(item);
        }
        catch (InvalidOperationException)
        {
            // CompleteAdding was called: the thread is ending or has ended.
            throw new ObjectDisposedException(nameof(NamespaceThread));
        }
    }

    private void Loop(ManualResetEventSlim started)
    {
        try
        {
            Enter(NamespacePath);
        }
        catch (Exception e)
        {
            _startFailure = ExceptionDispatchInfo.Capture(e);
            started.Set();
            return;
        }

        started.Set();
        foreach (var item in _queue.GetConsumingEnumerable())
        {
            item();
        }
    }

    private static void Enter(string path)
    {
        using var namespaceFile = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        if (Interop.setns(namespaceFile, Interop.CLONE_NEWNET) != 0)
        {
            throw new IOException($"setns({path}, CLONE_NEWNET): {Errno.Name(Marshal.GetLastPInvokeError())}");
        }
    }
}
