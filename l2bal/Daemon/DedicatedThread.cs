namespace L2Balance.Balancer.Daemon;

/// <summary>A background thread of its own for a blocking loop (the daemon's loop, the health probes).</summary>
internal static class DedicatedThread
{
    /// <summary>Runs <paramref name="body"/> on a new background thread; the task ends with it (or with its exception).</summary>
    public static Task Start(string name, Action body) => Start(name, () =>
    {
        body();
        return true;
    });

    /// <summary>Runs <paramref name="body"/> on a new background thread; the task ends with its result (or its exception).</summary>
    public static Task<T> Start<T>(string name, Func<T> body)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                done.SetResult(body());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        })
        {
            IsBackground = true,
            Name = name,
        };
        thread.Start();
        return done.Task;
    }
}
