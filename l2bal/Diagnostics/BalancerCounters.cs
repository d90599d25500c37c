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

    private long _advertBudgetSpent;
    private long _advertsLate;
    private long _largestAdvertGapTicks;
    private long _leaseLapses;
    private long _advertKernelDrops;

    private long _controlRefused;
    private long _controlAcceptFailures;

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

    /// <summary>Steps that read a whole advert budget and left frames for the next (a flood, or a burst).</summary>
    public long AdvertBudgetSpent => Interlocked.Read(ref _advertBudgetSpent);

    /// <summary>Adverts sent more than two intervals after the previous one.</summary>
    public long AdvertsLate => Interlocked.Read(ref _advertsLate);

    /// <summary>The longest time between two consecutive adverts of this node.</summary>
    public TimeSpan LargestAdvertGap => TimeSpan.FromTicks(Interlocked.Read(ref _largestAdvertGapTicks));

    /// <summary>Lease renewals that came later than the lease: the kernel refused new flows in between.</summary>
    public long LeaseLapses => Interlocked.Read(ref _leaseLapses);

    /// <summary>Advert frames the kernel dropped with the socket's receive ring full (loop thread writes).</summary>
    public long AdvertKernelDrops
    {
        get => Interlocked.Read(ref _advertKernelDrops);
        set => Interlocked.Exchange(ref _advertKernelDrops, value);
    }

    public void SpentAdvertBudget() => Interlocked.Increment(ref _advertBudgetSpent);

    /// <summary>Records the time since the previous advert: late beyond two intervals, and the largest.</summary>
    public void AdvertGap(TimeSpan gap, TimeSpan interval)
    {
        if (gap > 2 * interval)
        {
            Interlocked.Increment(ref _advertsLate);
        }
        if (gap.Ticks > Interlocked.Read(ref _largestAdvertGapTicks))
        {
            Interlocked.Exchange(ref _largestAdvertGapTicks, gap.Ticks);
        }
    }

    public void LeaseLapsed() => Interlocked.Increment(ref _leaseLapses);

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

    /// <summary>Control requests refused for want of privilege (docs/design.md#control-and-status).</summary>
    public long ControlRefusals => Interlocked.Read(ref _controlRefused);

    /// <summary>Accepts on the control socket that failed (out of descriptors, memory) and were retried.</summary>
    public long ControlAcceptFailures => Interlocked.Read(ref _controlAcceptFailures);

    /// <summary>Counts a refused control request; returns the count so far.</summary>
    public long ControlRefused() => Interlocked.Increment(ref _controlRefused);

    /// <summary>Counts a failed accept on the control socket; returns the count so far.</summary>
    public long ControlAcceptFailed() => Interlocked.Increment(ref _controlAcceptFailures);

    /// <summary>Counts an event of <paramref name="kind"/> (loop thread only).</summary>
    public void Count(string kind) => _events[kind]++;
}
