using L2Balance.Balancer.Protocol;

namespace L2Balance.Balancer.Diagnostics;

/// <summary>The daemon's own counters; every one exists in every build, from the start (docs/conventions.md §23).</summary>
internal sealed class BalancerCounters
{
    private readonly long[] _rejected = new long[Enum.GetValues<AdvertRejection>().Length];
    private readonly Dictionary<string, long> _events = EventKind.All.ToDictionary(k => k, _ => 0L, StringComparer.Ordinal);
    private long _advertsSent;
    private long _advertsReceived;
    private long _advertSendFailures;
    private long _ownershipChanges;
    private long _wakeups;
    private double _firstAdvertMs = -1;
    private double _longestStepMs;
    private double _longestEarlyStepMs;

    /// <summary>Steps in this first stretch of the daemon's life count toward <see cref="LongestEarlyStepMs"/>: the start-up, where compiling or loading code would show.</summary>
    public static readonly TimeSpan EarlyStretch = TimeSpan.FromSeconds(10);

    public long AdvertsSent => Interlocked.Read(ref _advertsSent);

    public long AdvertsReceived => Interlocked.Read(ref _advertsReceived);

    public long AdvertSendFailures => Interlocked.Read(ref _advertSendFailures);

    public long OwnershipChanges => Interlocked.Read(ref _ownershipChanges);

    /// <summary>Times the loop woke (adverts, requests, deadlines): its idle cost.</summary>
    public long Wakeups => Interlocked.Read(ref _wakeups);

    /// <summary>Milliseconds from the process's start (as the kernel records it, in clock ticks) to its first advert sent; -1 before it.</summary>
    public double FirstAdvertMs => Volatile.Read(ref _firstAdvertMs);

    /// <summary>The longest loop step (a wake-up's work) so far, in milliseconds (loop thread only).</summary>
    public double LongestStepMs => _longestStepMs;

    /// <summary>The longest loop step in the daemon's first <see cref="EarlyStretch"/>, in milliseconds (loop thread only).</summary>
    public double LongestEarlyStepMs => _longestEarlyStepMs;

    public long Rejected(AdvertRejection reason) => Interlocked.Read(ref _rejected[(int)reason]);

    /// <summary>Events recorded, by kind (loop thread only).</summary>
    public IReadOnlyDictionary<string, long> Events => _events;

    /// <summary>Counts an advert sent; the first one also records how long after the process's start it left.</summary>
    public void Sent()
    {
        if (Interlocked.Increment(ref _advertsSent) == 1)
        {
            using var self = System.Diagnostics.Process.GetCurrentProcess();
            Volatile.Write(ref _firstAdvertMs, Math.Round((DateTime.Now - self.StartTime).TotalMilliseconds, 1));
        }
    }

    /// <summary>Notes a loop step that took <paramref name="took"/>, begun <paramref name="at"/> after the daemon started (loop thread only).</summary>
    public void Stepped(TimeSpan took, TimeSpan at)
    {
        var ms = took.TotalMilliseconds;
        _longestStepMs = Math.Max(_longestStepMs, ms);
        if (at < EarlyStretch)
        {
            _longestEarlyStepMs = Math.Max(_longestEarlyStepMs, ms);
        }
    }

    public void SendFailed() => Interlocked.Increment(ref _advertSendFailures);

    public void Received() => Interlocked.Increment(ref _advertsReceived);

    public long Reject(AdvertRejection reason) => Interlocked.Increment(ref _rejected[(int)reason]);

    public void OwnershipChanged() => Interlocked.Increment(ref _ownershipChanges);

    public void Woke() => Interlocked.Increment(ref _wakeups);

    /// <summary>Counts an event of <paramref name="kind"/> (loop thread only).</summary>
    public void Count(string kind) => _events[kind]++;
}
