using System.Collections.Concurrent;
using System.Net;
using L2Balance.Proxy.Diagnostics;

namespace L2Balance.Proxy.Auth;

/// <summary>
/// Caps the RFC 1929 checks in progress (each a deliberately slow PBKDF2 run, <see cref="UserStore.DefaultIterations"/>),
/// per client address and in total, so that one address flooding bad logins holds a few checks at a time
/// and a good login from anywhere else still runs promptly (issue 13). A check over a cap is refused at
/// once, without a PBKDF2 run; the caller counts it and answers the client with an RFC 1929 failure.
/// The checks admitted run <see cref="RunSlots"/> at a time, in order of arrival, so a flood's few checks
/// queue ahead of a good login instead of sharing the cores with it.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The semaphore's wait handle is never asked for, so it holds nothing to dispose; the limiter lives as long as its server.")]
public sealed class PasswordCheckLimiter
{
    /// <summary>
    /// 4 checks at once per client address: a client logs in once per connection, and a cached good login
    /// takes no check at all, so only a guessing client (or a crowd behind one NAT logging in the very same
    /// instant) reaches it.
    /// </summary>
    public const int DefaultPerAddress = 4;

    /// <summary>
    /// 64 checks at once in total: on 2 cores that is about a second of queued PBKDF2, the longest a good
    /// login should wait when many addresses flood together; beyond it a refusal is cheaper than a wait.
    /// </summary>
    public const int DefaultTotal = 64;

    /// <summary>
    /// PBKDF2 runs at once: one fewer than the cores (at least 1), so that checks never take every core
    /// from the relays and the handshakes; measured in docs/benchmarks.md#password-flood.
    /// </summary>
    public static readonly int RunSlots = Math.Max(1, Environment.ProcessorCount - 1);

    private readonly ConcurrentDictionary<IPAddress, int> _perAddress = new();
    private readonly SemaphoreSlim _running = new(RunSlots, RunSlots);
    private int _total;

    public PasswordCheckLimiter(int perAddress = DefaultPerAddress, int total = DefaultTotal)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(perAddress, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(total, 1);
        PerAddress = perAddress;
        Total = total;
    }

    /// <summary>The cap per client address.</summary>
    public int PerAddress { get; }

    /// <summary>The cap for the process.</summary>
    public int Total { get; }

    /// <summary>Checks in progress now.</summary>
    public int InProgress => Volatile.Read(ref _total);

    /// <summary>
    /// Takes a place for one check from <paramref name="client"/>: null when taken (give it back with
    /// <see cref="Exit"/>), otherwise the cap that refused it.
    /// </summary>
    public WorkLimit? TryEnter(IPAddress client)
    {
        ArgumentNullException.ThrowIfNull(client);
        if (Interlocked.Increment(ref _total) > Total)
        {
            Interlocked.Decrement(ref _total);
            return WorkLimit.Total;
        }

        if (_perAddress.AddOrUpdate(client, 1, static (_, n) => n + 1) > PerAddress)
        {
            Release(client);
            Interlocked.Decrement(ref _total);
            return WorkLimit.PerClient;
        }

        return null;
    }

    /// <summary>
    /// Runs an admitted check on the thread pool once a run slot is free; waiters are served first in,
    /// first out (SemaphoreSlim queues its asynchronous waiters in order).
    /// </summary>
    public async Task<bool> RunAsync(Func<bool> check)
    {
        await _running.WaitAsync().ConfigureAwait(false);
        try
        {
            return await Task.Run(check).ConfigureAwait(false);
        }
        finally
        {
            _running.Release();
        }
    }

    /// <summary>Gives back the place <see cref="TryEnter"/> took for <paramref name="client"/>.</summary>
    public void Exit(IPAddress client)
    {
        Release(client);
        Interlocked.Decrement(ref _total);
    }

    private void Release(IPAddress client)
    {
        // The entry goes when it reaches 0, so the map holds at most Total addresses.
        while (_perAddress.TryGetValue(client, out var n))
        {
            if (n <= 1 ? _perAddress.TryRemove(new KeyValuePair<IPAddress, int>(client, n)) : _perAddress.TryUpdate(client, n - 1, n))
            {
                return;
            }
        }
    }
}
