namespace L2Balance.Tests.Common;

/// <summary>Every await in a test has a deadline (docs/conventions.md §26, Tmds.Ssh TaskTimeoutExtensions).</summary>
public static class TaskTimeoutExtensions
{
    /// <summary>Default deadline for one awaited step in a test.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    public static async Task<T> WithTimeout<T>(this Task<T> task, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        var finished = await Task.WhenAny(task, Task.Delay(limit)).ConfigureAwait(false);
        if (finished != task)
        {
            throw new TimeoutException($"Step did not finish within {limit.TotalSeconds:0.#} s.");
        }
        return await task.ConfigureAwait(false);
    }

    public static async Task WithTimeout(this Task task, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        var finished = await Task.WhenAny(task, Task.Delay(limit)).ConfigureAwait(false);
        if (finished != task)
        {
            throw new TimeoutException($"Step did not finish within {limit.TotalSeconds:0.#} s.");
        }
        await task.ConfigureAwait(false);
    }
}
