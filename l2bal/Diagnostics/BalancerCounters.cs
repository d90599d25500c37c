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
    private long _controlRefused;
    private long _controlAcceptFailures;

    public long AdvertsSent => Interlocked.Read(ref _advertsSent);

    public long AdvertsReceived => Interlocked.Read(ref _advertsReceived);

    public long AdvertSendFailures => Interlocked.Read(ref _advertSendFailures);

    public long OwnershipChanges => Interlocked.Read(ref _ownershipChanges);

    /// <summary>Times the loop woke (adverts, requests, deadlines): its idle cost.</summary>
    public long Wakeups => Interlocked.Read(ref _wakeups);

    public long Rejected(AdvertRejection reason) => Interlocked.Read(ref _rejected[(int)reason]);

    /// <summary>Events recorded, by kind (loop thread only).</summary>
    public IReadOnlyDictionary<string, long> Events => _events;

    public void Sent() => Interlocked.Increment(ref _advertsSent);

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
