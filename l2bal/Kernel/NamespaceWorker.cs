namespace L2Balance.Balancer.Kernel;

/// <summary>
/// Runs every call of a component one at a time, in a given network namespace or in the caller's.
/// </summary>
/// <remarks>
/// A netlink socket is bound to the namespace of the thread that opens it, and libnftables may
/// (re)open its socket during a call; /proc/thread-self/net is the calling thread's namespace. With a
/// namespace path, every call runs on one <see cref="NamespaceThread"/> that entered it, which keeps
/// them in that namespace and serializes use of an nft_ctx (not thread-safe). The daemon itself runs
/// inside its node's namespace and passes no path: calls then run on the caller's thread under a lock.
/// </remarks>
internal sealed class NamespaceWorker : IDisposable
{
    private readonly NamespaceThread? _thread;
    private readonly Lock _inline = new();
    private bool _disposed;

    /// <summary>Starts a thread named <paramref name="name"/> in <paramref name="namespacePath"/> (e.g. /var/run/netns/NS) if given.</summary>
    /// <exception cref="KernelFilterException">The namespace cannot be entered; the message names the path and errno.</exception>
    public NamespaceWorker(string name, string? namespacePath)
    {
        if (namespacePath is null)
        {
            return;
        }

        try
        {
            _thread = new NamespaceThread(namespacePath, name);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KernelFilterException(e.Message, e);
        }
    }

    /// <summary>Runs <paramref name="action"/> after the calls before it and returns its result (or rethrows its exception with its stack).</summary>
    public T Invoke<T>(Func<T> action)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_thread is not null)
        {
            return _thread.Invoke(action);
        }

        // Already in the right namespace: run here, serialized. The hop to a worker thread
        // spin-waited for nothing (docs/benchmarks.md#l2bal-idle-cpu).
        lock (_inline)
        {
            return action();
        }
    }

    /// <summary>Finishes queued work and ends the thread, if there is one.</summary>
    public void Dispose()
    {
        _disposed = true;
        _thread?.Dispose();
    }
}
